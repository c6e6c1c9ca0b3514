/* fork and execve in a multithreaded process: fork copies only the
 * calling thread (the child runs /bin/echo), then a second thread calls
 * execve while the main thread and a third thread compute: the others end
 * first and the new program (this one again, with "after") runs with the
 * calling thread as its main thread: gettid() == getpid() (Linux's
 * de_thread), and it can make and join a thread of its own. */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void *spin(void *arg) {
    (void)arg;
    volatile unsigned long x = 0;
    for (;;) x++;
    return NULL;
}

static void *nothing(void *arg) { return arg; }

static void *exec_it(void *arg) {
    (void)arg;
    usleep(100000);
    char *argv[] = {"thread_exec", "after", NULL};
    execv("/proc/self/exe", argv);
    perror("execv");
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t s, e;
    if (argc > 1 && !strcmp(argv[1], "after")) {
        pthread_t n;
        void *r = NULL;
        int ok = !pthread_create(&n, NULL, nothing, (void *)1) && !pthread_join(n, &r) && r == (void *)1;
        printf("exec from a thread tid==pid %d thread %d\n", gettid() == getpid(), ok);
        return 0;
    }
    pthread_create(&s, NULL, spin, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"/bin/echo", "child of a threaded process", NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child status %d\n", WEXITSTATUS(st));
    fflush(stdout);
    pthread_create(&e, NULL, exec_it, NULL);
    volatile unsigned long x = 0;
    for (;;) x++;
}
