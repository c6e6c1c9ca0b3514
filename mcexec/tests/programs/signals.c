/* Signal handling on the LWK: a handler for SIGUSR1 raised by the program
 * itself (with SA_SIGINFO and floating point in the handler), SIG_IGN, and
 * a SIGINT from outside that interrupts a blocking read (no SA_RESTART:
 * read returns EINTR after the handler ran). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1, got_int;
static volatile double acc;

static void on_usr1(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    acc = acc * 1.5 + 0.25; /* uses SSE registers */
    got_usr1 = sig == SIGUSR1 && si->si_signo == SIGUSR1;
}

static void on_int(int sig) { got_int = sig; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    double before = 3.0;
    acc = 1.0;
    raise(SIGUSR1);
    printf("usr1 handled=%d acc=%.2f before=%.1f\n", got_usr1, acc, before);
    signal(SIGUSR2, SIG_IGN);
    raise(SIGUSR2);
    printf("usr2 ignored\n");
    /* A blocked signal stays pending whatever its disposition (ignored, or
     * ignored by default), and sigwaitinfo takes it. */
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGWINCH);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR2);
    raise(SIGWINCH);
    sigpending(&pend);
    int p2 = sigismember(&pend, SIGUSR2), pw = sigismember(&pend, SIGWINCH);
    int w1 = sigwaitinfo(&set, NULL), w2 = sigwaitinfo(&set, NULL);
    printf("blocked while ignored: pending %d %d, waited %d %d\n", p2, pw, w1 == SIGUSR2 || w2 == SIGUSR2,
        w1 == SIGWINCH || w2 == SIGWINCH);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_int;
    sigaction(SIGINT, &sa, NULL);
    printf("waiting\n");
    fflush(stdout);
    char c;
    ssize_t n = read(0, &c, 1);
    printf("read=%zd errno=%s got_int=%d\n", n, n < 0 ? strerror(errno) : "-", got_int);
    return 0;
}
