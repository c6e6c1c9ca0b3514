/* fork and execve in a multithreaded process: fork copies only the
 * calling thread (the child runs /bin/echo), then a second thread calls
 * execve while the main thread and a third thread compute: the others end
 * first and the new program runs. */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void *spin(void *arg) {
    (void)arg;
    volatile unsigned long x = 0;
    for (;;) x++;
    return NULL;
}

static void *exec_it(void *arg) {
    (void)arg;
    usleep(100000);
    char *argv[] = {"/bin/echo", "exec from a thread", NULL};
    execv(argv[0], argv);
    perror("execv");
    return NULL;
}

int main(void) {
    pthread_t s, e;
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
