/* Signals with threads: a process-directed signal runs its handler in the
 * thread that does not block it; pthread_kill (tgkill, SI_TKILL) and
 * pthread_sigqueue (rt_tgsigqueueinfo, with its value) reach that one
 * thread; kill(0, sig) reaches the process through its process group on
 * Linux (mcexec forwards it); SIGPIPE after a write to a pipe without a
 * reader. With "fatal": a SIGSEGV in one thread ends the whole process
 * while the others compute. Prints one line per check. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile pid_t in_tid[65];
static volatile int code[65], value[65];
static volatile int stop;

static void on_sig(int s, siginfo_t *si, void *uc) {
    (void)uc;
    in_tid[s] = gettid();
    code[s] = si->si_code;
    value[s] = si->si_value.sival_int;
}

static void *worker(void *arg) {
    *(volatile pid_t *)arg = gettid();
    while (!stop) usleep(1000);
    return NULL;
}

static void *spin(void *arg) {
    (void)arg;
    for (;;) ;
    return NULL;
}

static void *crash(void *arg) {
    (void)arg;
    usleep(100000);
    *(volatile int *)8 = 1;
    return NULL;
}

static void wait_for(int s) {
    for (int i = 0; i < 2000 && !in_tid[s]; i++) usleep(1000);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "fatal")) {
        pthread_t a, b;
        pthread_create(&a, NULL, spin, NULL);
        pthread_create(&b, NULL, crash, NULL);
        printf("spinning\n");
        fflush(stdout);
        for (;;) ;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO;
    int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN, SIGWINCH, SIGPIPE};
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);

    pid_t wt = 0;
    pthread_t w;
    pthread_create(&w, NULL, worker, (void *)&wt);
    while (!wt) usleep(1000);
    /* The main thread blocks them all: the worker takes them. */
    sigset_t set;
    sigemptyset(&set);
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&set, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    kill(getpid(), SIGUSR1);
    wait_for(SIGUSR1);
    printf("process-directed %d\n", in_tid[SIGUSR1] == wt);

    pthread_kill(w, SIGUSR2);
    wait_for(SIGUSR2);
    printf("pthread_kill %d code %d\n", in_tid[SIGUSR2] == wt, code[SIGUSR2] == SI_TKILL);

    union sigval v = {.sival_int = 77};
    pthread_sigqueue(w, SIGRTMIN, v);
    wait_for(SIGRTMIN);
    printf("pthread_sigqueue %d value %d\n", in_tid[SIGRTMIN] == wt, value[SIGRTMIN]);

    /* Our own process group only (mcexec's), then kill(0, ...). */
    setpgid(0, 0);
    int k = kill(0, SIGWINCH);
    wait_for(SIGWINCH);
    printf("kill0 %d %d\n", k, in_tid[SIGWINCH] == wt);

    int p[2];
    pipe(p);
    close(p[0]);
    errno = 0;
    ssize_t n = write(p[1], "x", 1);
    int e = errno;
    pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* SIGPIPE is the writer's */
    wait_for(SIGPIPE);
    printf("sigpipe %zd %s %d\n", n, e == EPIPE ? "EPIPE" : "?", in_tid[SIGPIPE] == getpid());
    stop = 1;
    pthread_join(w, NULL);
    return 0;
}
