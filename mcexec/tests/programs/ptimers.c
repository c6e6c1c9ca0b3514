/* POSIX timers and the CPU-time itimers kept in the LWK: a periodic
 * SIGEV_SIGNAL timer (si_code SI_TIMER, si_value, si_timerid), overruns
 * counted while its signal is blocked, SIGEV_THREAD_ID to one thread,
 * glibc's SIGEV_THREAD, SIGEV_NONE read back, a timer on the process's
 * CPU-time clock, the errors as Linux, and ITIMER_VIRTUAL / ITIMER_PROF
 * counting the program's own CPU time (a sleep does not count, a spin
 * does), and timers deleted at execve (a periodic one whose signal would
 * kill the new program). Prints one line per check. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t hits, code_ok, value_ok, id_ok, vt, prof;
static volatile pid_t hit_tid;
static int want_id;

static void on_rt(int s, siginfo_t *si, void *uc) {
    (void)s; (void)uc;
    hits++;
    code_ok = si->si_code == SI_TIMER;
    value_ok = si->si_value.sival_int == 4242;
    id_ok = si->si_timerid == want_id;
    hit_tid = gettid();
}
static void on_vt(int s) { (void)s; vt++; }
static void on_prof(int s) { (void)s; prof++; }

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile int stop_target;
static void *target(void *arg) {
    *(pid_t *)arg = gettid();
    while (!stop_target) usleep(1000);
    return NULL;
}

static volatile int thread_cb;
static void cb(union sigval v) { if (v.sival_int == 7) thread_cb++; }

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "after-exec")) {
        usleep(1500000); /* past the first expiry of the timer set before execve */
        printf("timers gone after exec\n");
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &sa, NULL);

    /* Periodic SIGEV_SIGNAL on CLOCK_MONOTONIC, 10 ms. */
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 4242;
    int kid = -1;
    if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &kid)) { perror("timer_create"); return 1; }
    want_id = kid;
    struct itimerspec its = {{0, 10000000}, {0, 10000000}};
    syscall(SYS_timer_settime, kid, 0, &its, NULL);
    while (hits < 5) pause();
    its.it_value.tv_nsec = 0;
    syscall(SYS_timer_settime, kid, 0, &its, NULL);
    printf("signal %d code %d value %d id %d tid %d\n", hits >= 5, code_ok, value_ok, id_ok, hit_tid == getpid());

    /* Overruns: 1 ms period while SIGRTMIN is blocked for 100 ms. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct itimerspec fast = {{0, 1000000}, {0, 1000000}};
    double w0 = mono_s();
    syscall(SYS_timer_settime, kid, 0, &fast, NULL);
    usleep(100000);
    siginfo_t si;
    int s = sigwaitinfo(&set, &si);
    /* At most one overrun per period that passed, and most of them. */
    int periods = (int)((mono_s() - w0) * 1000) + 2;
    int ov = (int)syscall(SYS_timer_getoverrun, kid);
    printf("overrun %d %d %d\n", s == SIGRTMIN, si.si_overrun >= 50 && si.si_overrun <= periods, ov == si.si_overrun);
    struct itimerspec off = {{0, 0}, {0, 0}};
    syscall(SYS_timer_settime, kid, 0, &off, NULL);
    syscall(SYS_timer_delete, kid);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    errno = 0;
    long r = syscall(SYS_timer_delete, kid);
    printf("deleted %ld %s\n", r, errno == EINVAL ? "EINVAL" : strerror(errno));

    /* SIGEV_THREAD_ID: the signal goes to that thread. */
    pid_t ttid = 0;
    pthread_t th;
    pthread_create(&th, NULL, target, &ttid);
    while (!ttid) usleep(1000);
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 4242;
    ev._sigev_un._tid = ttid;
    if (syscall(SYS_timer_create, CLOCK_REALTIME, &ev, &kid)) { perror("timer_create tid"); return 1; }
    want_id = kid;
    hits = 0;
    struct itimerspec once = {{0, 0}, {0, 20000000}};
    syscall(SYS_timer_settime, kid, 0, &once, NULL);
    while (!hits) usleep(1000);
    stop_target = 1;
    pthread_join(th, NULL);
    printf("thread_id %d\n", hit_tid == ttid);
    syscall(SYS_timer_delete, kid);

    /* glibc's SIGEV_THREAD (built on SIGEV_THREAD_ID). */
    timer_t gt;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = cb;
    ev.sigev_value.sival_int = 7;
    if (timer_create(CLOCK_MONOTONIC, &ev, &gt)) { perror("timer_create thread"); return 1; }
    struct itimerspec per = {{0, 20000000}, {0, 20000000}};
    timer_settime(gt, 0, &per, NULL);
    double t0 = mono_s();
    while (thread_cb < 3 && mono_s() - t0 < 10) usleep(5000);
    timer_delete(gt);
    printf("sigev_thread %d\n", thread_cb >= 3);

    /* SIGEV_NONE: nothing sent, the time left reads back. */
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_NONE;
    syscall(SYS_timer_create, CLOCK_BOOTTIME, &ev, &kid);
    struct itimerspec two = {{0, 0}, {2, 0}}, cur;
    syscall(SYS_timer_settime, kid, 0, &two, NULL);
    usleep(20000);
    syscall(SYS_timer_gettime, kid, &cur);
    printf("none %d\n", cur.it_value.tv_sec <= 1 && (cur.it_value.tv_sec > 0 || cur.it_value.tv_nsec > 0));
    syscall(SYS_timer_delete, kid);

    /* A timer on the process's CPU-time clock: fires after 100 ms of CPU. */
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 4242;
    syscall(SYS_timer_create, CLOCK_PROCESS_CPUTIME_ID, &ev, &kid);
    want_id = kid;
    hits = 0;
    struct itimerspec cpu = {{0, 0}, {0, 100000000}};
    double c0 = cpu_s();
    syscall(SYS_timer_settime, kid, 0, &cpu, NULL);
    usleep(300000); /* a sleep is no CPU time */
    int early = hits;
    while (!hits) ;
    double used = cpu_s() - c0;
    printf("cputimer early %d used %d\n", early, used >= 0.09 && used < 1.0);
    syscall(SYS_timer_delete, kid);

    /* Errors as Linux. */
    errno = 0;
    r = syscall(SYS_timer_create, 99, NULL, &kid);
    printf("bad clock %s\n", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));
    errno = 0;
    r = syscall(SYS_timer_create, CLOCK_REALTIME, (void *)8, &kid);
    printf("bad sigevent %s\n", r < 0 && errno == EFAULT ? "EFAULT" : strerror(errno));
    errno = 0;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = 65;
    r = syscall(SYS_timer_create, CLOCK_REALTIME, &ev, &kid);
    printf("bad signal %s\n", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));
    syscall(SYS_timer_create, CLOCK_REALTIME, NULL, &kid);
    struct itimerspec bad = {{0, 0}, {0, 1000000000}};
    errno = 0;
    r = syscall(SYS_timer_settime, kid, 0, &bad, NULL);
    printf("bad time %s\n", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));
    errno = 0;
    r = syscall(SYS_timer_settime, kid, 0, (void *)8, NULL);
    printf("bad pointer %s\n", r < 0 && errno == EFAULT ? "EFAULT" : strerror(errno));
    errno = 0;
    r = syscall(SYS_timer_gettime, kid + 100, &cur);
    printf("bad id %s\n", r < 0 && errno == EINVAL ? "EINVAL" : strerror(errno));

    /* ITIMER_VIRTUAL: 100 ms of user time; a 300 ms sleep is none. */
    signal(SIGVTALRM, on_vt);
    signal(SIGPROF, on_prof);
    struct itimerval v = {{0, 0}, {0, 100000}}, got;
    c0 = cpu_s();
    setitimer(ITIMER_VIRTUAL, &v, NULL);
    usleep(300000);
    getitimer(ITIMER_VIRTUAL, &got);
    early = vt;
    int left = got.it_value.tv_sec == 0 && got.it_value.tv_usec > 50000;
    while (!vt) ;
    used = cpu_s() - c0;
    printf("virtual early %d left %d used %d\n", early, left, used >= 0.09 && used < 1.0);

    /* ITIMER_PROF, periodic: 3 signals of 50 ms each. */
    struct itimerval pv = {{0, 50000}, {0, 50000}};
    c0 = cpu_s();
    setitimer(ITIMER_PROF, &pv, NULL);
    while (prof < 3) ;
    used = cpu_s() - c0;
    struct itimerval zero = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &zero, &got);
    printf("prof %d used %d interval %ld\n", prof >= 3, used >= 0.14 && used < 2.0, (long)got.it_interval.tv_usec);

    /* A periodic timer whose signal's default action kills: gone at
     * execve (the new program has default actions). Its first expiry is
     * 1 s away: execve itself never takes that long, even on a loaded
     * machine where each LWK system call is emulated. */
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN + 1;
    syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &kid);
    struct itimerspec p100 = {{0, 100000000}, {1, 0}};
    syscall(SYS_timer_settime, kid, 0, &p100, NULL);
    fflush(stdout);
    char *args[] = {"ptimers", "after-exec", NULL};
    execv("/proc/self/exe", args);
    perror("execv");
    return 1;
}
