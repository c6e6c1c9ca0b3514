/* signalfd of the program's own signals: SFD_NONBLOCK (EAGAIN) and
 * SFD_CLOEXEC, readiness in poll, epoll and select (none while nothing of
 * the mask is pending, gone again after a read), read dequeuing (struct
 * signalfd_siginfo with si_code, pid, si_value, a POSIX timer's id), a new
 * mask on the same descriptor, a blocking read woken by another thread,
 * a fork child reading its own signal through the inherited descriptor
 * and a signal from that child (through Linux and mcexec), and the errors
 * as Linux. Prints one line per check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ready(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void *sender(void *arg) {
    (void)arg;
    usleep(100000);
    kill(getpid(), SIGUSR1);
    return NULL;
}

int main(void) {
    sigset_t block, m;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &block, NULL);
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    int sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
    struct signalfd_siginfo si;
    errno = 0;
    ssize_t n = read(sfd, &si, sizeof si);
    printf("flags cloexec %d nonblock %d empty %s ready %d\n", (fcntl(sfd, F_GETFD) & FD_CLOEXEC) != 0,
           (fcntl(sfd, F_GETFL) & O_NONBLOCK) != 0, n < 0 && errno == EAGAIN ? "EAGAIN" : "?", ready(sfd, 0));

    /* poll: readable once SIGUSR1 is pending, not after the read. */
    kill(getpid(), SIGUSR1);
    int r1 = ready(sfd, 2000);
    n = read(sfd, &si, sizeof si);
    sigset_t pend;
    sigpending(&pend);
    printf("poll %d read %zd signo %d code %d pid %d after %d pending %d\n", r1, n, (int)si.ssi_signo, si.ssi_code,
           si.ssi_pid == (unsigned)getpid(), ready(sfd, 0), sigismember(&pend, SIGUSR1));

    /* epoll, and a new mask on the same descriptor. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    kill(getpid(), SIGUSR2);
    int e0 = epoll_wait(ep, &out, 1, 0);
    sigaddset(&m, SIGUSR2);
    int same = signalfd(sfd, &m, 0) == sfd;
    int e1 = epoll_wait(ep, &out, 1, 2000);
    n = read(sfd, &si, sizeof si);
    printf("epoll %d %d same %d signo %d\n", e0, e1, same, (int)si.ssi_signo);

    /* select, and sigqueue's value. */
    union sigval v = {.sival_int = 99};
    sigqueue(getpid(), SIGUSR1, v);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sfd, &rd);
    struct timeval tv = {2, 0};
    int s = select(sfd + 1, &rd, NULL, NULL, &tv);
    n = read(sfd, &si, sizeof si);
    printf("select %d code %d int %d\n", s, si.ssi_code == SI_QUEUE, si.ssi_int);

    /* A POSIX timer's signal. */
    sigaddset(&m, SIGRTMIN);
    signalfd(sfd, &m, 0);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN;
    sev.sigev_value.sival_int = 5;
    timer_t tm;
    timer_create(CLOCK_MONOTONIC, &sev, &tm);
    struct itimerspec its = {{0, 0}, {0, 10000000}};
    timer_settime(tm, 0, &its, NULL);
    int rt = ready(sfd, 2000);
    n = read(sfd, &si, sizeof si);
    printf("timer %d code %d int %d id %d\n", rt, si.ssi_code == SI_TIMER, si.ssi_int, si.ssi_tid == (unsigned)(long)tm);
    timer_delete(tm);

    /* A blocking read, woken by another thread's kill. */
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    int bfd = signalfd(-1, &m, 0);
    pthread_t th;
    pthread_create(&th, NULL, sender, NULL);
    n = read(bfd, &si, sizeof si);
    pthread_join(th, NULL);
    printf("blocking %zd signo %d\n", n, (int)si.ssi_signo);

    /* fork: the child reads its own signal through the inherited
     * descriptor, then signals the parent through Linux. */
    pid_t c = fork();
    if (c == 0) {
        raise(SIGUSR1);
        int ok = ready(sfd, 2000) && read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo == SIGUSR1;
        kill(getppid(), SIGUSR2);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(c, &st, 0);
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGUSR2);
    signalfd(sfd, &m, 0);
    int rp = ready(sfd, 2000);
    n = read(sfd, &si, sizeof si);
    printf("fork child %d parent %d signo %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1, rp, (int)si.ssi_signo);

    /* Errors as Linux. */
    errno = 0;
    long r = syscall(SYS_signalfd4, -1, &m, 4, 0);
    printf("size %s", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));
    errno = 0;
    r = syscall(SYS_signalfd4, -1, &m, 8, 1);
    printf(" flags %s", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));
    errno = 0;
    r = syscall(SYS_signalfd4, 0, &m, 8, 0);
    printf(" notsfd %s", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));
    errno = 0;
    r = syscall(SYS_signalfd4, 999, &m, 8, 0);
    printf(" badfd %s", r < 0 && errno == EBADF ? "EBADF" : strerror(errno));
    errno = 0;
    r = syscall(SYS_signalfd4, -1, (void *)8, 8, 0);
    printf(" fault %s", r < 0 && errno == EFAULT ? "EFAULT" : strerror(errno));
    errno = 0;
    char small[64];
    r = read(sfd, small, sizeof small);
    printf(" short %s\n", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));
    return 0;
}
