/* Signal handlers in a utility thread (docs/uti.md). The main thread
 * (on the LWK) drives; the utility thread (on Linux) takes:
 *   1. SIGUSR1 by pthread_kill while it computes without system calls
 *      (SA_SIGINFO handler: runs on the utility thread, si_code SI_TKILL,
 *      the handler's mask is sa_mask + SIGUSR1, the old mask comes back);
 *   2. SIGUSR1 by pthread_sigqueue (SI_QUEUE, si_value 42);
 *   3. SIGUSR2 while it blocks it: pending, not run; run at the unblock,
 *      on its sigaltstack (SA_ONSTACK);
 *   4. SIGHUP raised by itself with SA_RESETHAND | SA_NODEFER;
 *   5. SIGUSR1 while it blocks in read() of a pipe: EINTR (no SA_RESTART);
 *   6. SIGUSR2 sent to the process (kill) while the main thread blocks it:
 *      the utility thread, the only one that does not, runs the handler;
 *   7. a write to address 16 with a SIGSEGV handler: it runs (si_addr 16,
 *      SEGV_MAPERR) and siglongjmp's back;
 *   8. sigsuspend with SIGUSR1 unblocked while the thread blocks it, woken
 *      by pthread_kill: -1 EINTR after one handler run, the mask from
 *      before the call back (SIGUSR1 blocked);
 *   9. a handler that sets its frame's uc_stack to SS_DISABLE: after it
 *      returns the thread has no alternate stack (rt_sigreturn restores
 *      uc_stack, as Linux); the same check on the main (LWK) thread first.
 * Prints one line per check ("... ok" or what was seen) and "done".
 * With argument "segv", the utility thread then writes to address 16:
 * the process dies of SIGSEGV. Waits are generous polls (30 s). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uti.h>

static atomic_int uti_tid, step, usr1, usr2, hup, read_done, suspend_done;
static atomic_int h_tid, h_code, h_value, h_mask_ok, h2_alt, h2_tid, hup_nodefer, hup_reset;
static char altstack[256 * 1024];
static int pipefd[2];
static int read_ret, read_errno;
static int *volatile bad = (int *)16;
static sigjmp_buf segv_jmp;
static atomic_long segv_addr;
static atomic_int segv_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    atomic_store(&segv_addr, (long)si->si_addr);
    atomic_store(&segv_code, si->si_code);
    siglongjmp(segv_jmp, 1);
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    atomic_store(&h_mask_ok, sigismember(&cur, sig) && sigismember(&cur, SIGWINCH));
    atomic_store(&h_tid, gettid());
    atomic_store(&h_code, si->si_code);
    atomic_store(&h_value, si->si_code == SI_QUEUE ? si->si_value.sival_int : -1);
    atomic_fetch_add(&usr1, 1);
}

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    char local;
    atomic_store(&h2_alt, &local >= altstack && &local < altstack + sizeof altstack);
    atomic_store(&h2_tid, gettid());
    atomic_fetch_add(&usr2, 1);
}

static atomic_int vtalrm;

static void on_vtalrm(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    ((ucontext_t *)uc)->uc_stack.ss_flags = SS_DISABLE;
    atomic_fetch_add(&vtalrm, 1);
}

/* Step 9 in the calling thread, with `alt` as its alternate stack: the
 * handler disables it through uc_stack; then it is set again. */
static void check_uc_stack(const char *who, void *alt, size_t size)
{
    stack_t ss = { .ss_sp = alt, .ss_size = size, .ss_flags = 0 }, cur;
    if (sigaltstack(&ss, NULL) != 0)
        perror("sigaltstack");
    int before = atomic_load(&vtalrm);
    raise(SIGVTALRM);
    sigaltstack(NULL, &cur);
    printf("%s uc_stack: handler %d disabled %d\n", who, atomic_load(&vtalrm) - before, (cur.ss_flags & SS_DISABLE) != 0);
    fflush(stdout);
    if (sigaltstack(&ss, NULL) != 0)
        perror("sigaltstack");
}

static void on_hup(int sig)
{
    sigset_t cur;
    struct sigaction now;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    sigaction(sig, NULL, &now);
    atomic_store(&hup_nodefer, !sigismember(&cur, sig));
    atomic_store(&hup_reset, now.sa_handler == SIG_DFL);
    atomic_fetch_add(&hup, 1);
}

/* Wait (30 s at most) until *v >= want; 0 on time-out. */
static int wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 30000; i++) {
        if (atomic_load(v) >= want)
            return 1;
        usleep(1000);
    }
    return 0;
}

/* The utility thread's own wait: computes, no system call. */
static void spin_for(atomic_int *v, int want)
{
    while (atomic_load(v) < want)
        ;
}

static void *utility(void *arg)
{
    int segv = arg != NULL;
    cpu_set_t set;
    int lo = -1, hi = -1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) {
                if (lo < 0)
                    lo = c;
                hi = c;
            }
    printf("uti cpu %d affinity %d-%d\n", sched_getcpu(), lo, hi);
    fflush(stdout);
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0)
        perror("sigaltstack");
    atomic_store(&uti_tid, gettid());
    atomic_store(&step, 1);
    spin_for(&usr1, 1); /* 1: pthread_kill */
    atomic_store(&step, 2);
    spin_for(&usr1, 2); /* 2: pthread_sigqueue */
    sigset_t s2;
    sigemptyset(&s2);
    sigaddset(&s2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s2, NULL);
    atomic_store(&step, 3);
    spin_for(&step, 4); /* 3: sent while blocked */
    sigset_t pend;
    sigpending(&pend);
    int pending = sigismember(&pend, SIGUSR2) && atomic_load(&usr2) == 0;
    pthread_sigmask(SIG_UNBLOCK, &s2, NULL);
    int at_unblock = atomic_load(&usr2);
    printf("blocked pending %s, at unblock %d\n", pending ? "yes" : "no", at_unblock);
    raise(SIGHUP); /* 4 */
    pthread_sigmask(SIG_SETMASK, NULL, &s2);
    printf("mask after handlers: usr1 %d usr2 %d hup %d\n", sigismember(&s2, SIGUSR1), sigismember(&s2, SIGUSR2),
        sigismember(&s2, SIGHUP));
    fflush(stdout);
    atomic_store(&step, 5);
    char c;
    read_ret = read(pipefd[0], &c, 1); /* 5 */
    read_errno = errno;
    atomic_store(&read_done, 1);
    spin_for(&usr2, 2); /* 6 */
    sigset_t b1, during;
    sigemptyset(&b1);
    sigaddset(&b1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &b1, NULL);
    int usr1_before = atomic_load(&usr1);
    pthread_sigmask(SIG_SETMASK, NULL, &during);
    sigdelset(&during, SIGUSR1);
    atomic_store(&step, 8);
    int sr = sigsuspend(&during); /* 8 */
    int se = errno;
    sigset_t after;
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    printf("sigsuspend: %d %s handler %d mask back %d\n", sr, sr < 0 && se == EINTR ? "EINTR" : strerror(se),
        atomic_load(&usr1) - usr1_before, sigismember(&after, SIGUSR1));
    fflush(stdout);
    atomic_store(&suspend_done, 1);
    pthread_sigmask(SIG_UNBLOCK, &b1, NULL);
    check_uc_stack("uti", altstack, sizeof altstack); /* 9 */
    struct sigaction sa = { .sa_flags = SA_SIGINFO, .sa_sigaction = on_segv };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(segv_jmp, 1) == 0)
        *bad = 1; /* 7 */
    signal(SIGSEGV, SIG_DFL);
    printf("caught segv: addr %ld %s\n", atomic_load(&segv_addr),
        atomic_load(&segv_code) == SEGV_MAPERR ? "SEGV_MAPERR" : "wrong");
    fflush(stdout);
    if (segv) {
        printf("segv now\n");
        fflush(stdout);
        *bad = 1;
    }
    return (void *)7;
}

int main(int argc, char **argv)
{
    int segv = argc > 1 && strcmp(argv[1], "segv") == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_flags = SA_SIGINFO;
    sa.sa_sigaction = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGWINCH);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sa.sa_sigaction = on_usr2;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_flags = SA_SIGINFO;
    sa.sa_sigaction = on_vtalrm;
    sigaction(SIGVTALRM, &sa, NULL);
    static char main_alt[64 * 1024];
    check_uc_stack("main", main_alt, sizeof main_alt);
    if (pipe(pipefd) != 0)
        return 10;

    uti_attr_t ua;
    pthread_t th;
    if (uti_attr_init(&ua) != 0)
        return 11;
    if (uti_pthread_create(&th, NULL, utility, segv ? (void *)1 : NULL, &ua) != 0)
        return 12;
    if (!wait_for(&step, 1))
        return 13;
    int tid = atomic_load(&uti_tid);
    printf("main tid differs %d\n", tid != gettid());

    pthread_kill(th, SIGUSR1);
    if (!wait_for(&usr1, 1))
        return 14;
    printf("kill: tid %s code %s mask %s\n", atomic_load(&h_tid) == tid ? "ok" : "wrong",
        atomic_load(&h_code) == SI_TKILL ? "SI_TKILL" : "wrong", atomic_load(&h_mask_ok) ? "ok" : "wrong");
    fflush(stdout);

    if (!wait_for(&step, 2))
        return 15;
    union sigval v = { .sival_int = 42 };
    pthread_sigqueue(th, SIGUSR1, v);
    if (!wait_for(&usr1, 2))
        return 16;
    printf("queue: tid %s code %s value %d\n", atomic_load(&h_tid) == tid ? "ok" : "wrong",
        atomic_load(&h_code) == SI_QUEUE ? "SI_QUEUE" : "wrong", atomic_load(&h_value));
    fflush(stdout);

    if (!wait_for(&step, 3))
        return 17;
    pthread_kill(th, SIGUSR2);
    atomic_store(&step, 4);
    if (!wait_for(&step, 5))
        return 18;
    printf("usr2: tid %s altstack %s\n", atomic_load(&h2_tid) == tid ? "ok" : "wrong",
        atomic_load(&h2_alt) ? "yes" : "no");
    printf("hup: nodefer %d reset %d\n", atomic_load(&hup_nodefer), atomic_load(&hup_reset));
    fflush(stdout);

    /* Until the read is interrupted: a signal that arrives before the
     * thread blocks in read only runs the handler. */
    for (int i = 0; i < 300 && !atomic_load(&read_done); i++) {
        pthread_kill(th, SIGUSR1);
        usleep(100000);
    }
    if (!atomic_load(&read_done))
        return 19;
    printf("read: %d %s\n", read_ret, read_ret < 0 && read_errno == EINTR ? "EINTR" : strerror(read_errno));
    sigset_t s2;
    sigemptyset(&s2);
    sigaddset(&s2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s2, NULL);
    atomic_store(&h2_tid, 0);
    kill(getpid(), SIGUSR2);
    if (!wait_for(&usr2, 2))
        return 20;
    printf("process-directed: tid %s\n", atomic_load(&h2_tid) == tid ? "ok" : "wrong");
    fflush(stdout);
    if (!wait_for(&step, 8))
        return 21;
    pthread_kill(th, SIGUSR1);
    if (!wait_for(&suspend_done, 1))
        return 22;
    void *ret;
    pthread_join(th, &ret);
    printf("done %ld\n", (long)ret);
    return 0;
}
