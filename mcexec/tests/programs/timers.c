/* Timers and signals from Linux: alarm(1) + pause() with a SIGALRM
 * handler, a 100 ms ITIMER_REAL setitimer, and a SIGUSR1 sent to the
 * process from outside (the test kills mcexec's pid once "ready" is
 * printed); sigwait for SIGUSR2 raised by another thread; a nanosleep
 * interrupted by an SA_RESTART handler returns EINTR with the time left. */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms, usr1;

static void on_alrm(int s) { (void)s; alarms++; }
static void on_usr1(int s) { (void)s; usr1 = 1; }

static void *raiser(void *arg) {
    (void)arg;
    usleep(50000);
    kill(getpid(), SIGUSR2);
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);

    alarm(1);
    pause();
    printf("alarm %d\n", (int)alarms);

    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    while (alarms < 2) pause();
    printf("itimer %d\n", (int)alarms);

    /* A sleep interrupted by a handler returns EINTR with the time left,
     * even with SA_RESTART (signal(7): never restarted). */
    sa.sa_handler = on_alrm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec req = {2, 0}, rem = {0, 0};
    int r = nanosleep(&req, &rem);
    printf("nanosleep %d %s rem %ld\n", r, r && errno == EINTR ? "EINTR" : "-", (long)rem.tv_sec);
    sa.sa_flags = 0;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    pthread_create(&t, NULL, raiser, NULL);
    int sig = 0;
    sigwait(&set, &sig);
    pthread_join(t, NULL);
    printf("sigwait %d\n", sig);

    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < 200 && !usr1; i++) usleep(50000);
    printf("usr1 %d\n", (int)usr1);
    return 0;
}
