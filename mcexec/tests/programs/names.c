/* Thread names per thread: prctl(PR_SET_NAME/PR_GET_NAME),
 * pthread_setname_np/pthread_getname_np of the calling thread (prctl) and
 * of another one (its /proc/self/task/<tid>/comm), /proc/self/comm,
 * /proc/thread-self/comm, /proc/self/status, and a new thread named as its
 * creator. Prints one line per check. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static pthread_barrier_t bar;
static pid_t tid_a, tid_b;
static char a_get[16], b_get[16], b_self[64], c_get[16];

static void read_file(const char *path, char *out, size_t n) {
    int fd = open(path, O_RDONLY);
    ssize_t r = fd < 0 ? -1 : read(fd, out, n - 1);
    out[r > 0 ? r : 0] = 0;
    if (fd >= 0) close(fd);
}

static void *child_c(void *arg) { (void)arg; prctl(PR_GET_NAME, c_get); return NULL; }

static void *thread_a(void *arg) {
    (void)arg;
    tid_a = gettid();
    pthread_setname_np(pthread_self(), "workerA");
    prctl(PR_GET_NAME, a_get);
    pthread_t c;
    pthread_create(&c, NULL, child_c, NULL);
    pthread_join(c, NULL);
    pthread_barrier_wait(&bar); /* named */
    pthread_barrier_wait(&bar); /* main checked */
    return NULL;
}

static void *thread_b(void *arg) {
    (void)arg;
    tid_b = gettid();
    pthread_barrier_wait(&bar); /* ready */
    pthread_barrier_wait(&bar); /* main renamed us */
    prctl(PR_GET_NAME, b_get);
    read_file("/proc/thread-self/comm", b_self, sizeof b_self);
    return NULL;
}

int main(void) {
    char buf[256], path[64];
    prctl(PR_SET_NAME, "mainname-is-too-long");
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, thread_a, NULL);
    pthread_barrier_wait(&bar);
    printf("self %s inherited %s\n", a_get, c_get);

    char other[16] = "";
    pthread_getname_np(a, other, sizeof other);
    printf("other %s\n", other);
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid_a);
    read_file(path, buf, sizeof buf);
    printf("task comm %s", buf);
    pthread_barrier_wait(&bar);
    pthread_join(a, NULL);

    pthread_create(&b, NULL, thread_b, NULL);
    pthread_barrier_wait(&bar);
    int rc = pthread_setname_np(b, "workerB");
    pthread_barrier_wait(&bar);
    pthread_join(b, NULL);
    printf("set other %d %s thread-self %s", rc, b_get, b_self);

    char mine[16];
    prctl(PR_GET_NAME, mine);
    read_file("/proc/self/comm", buf, sizeof buf);
    printf("main %s comm %s", mine, buf);
    read_file("/proc/self/status", buf, sizeof buf);
    char *nl = strchr(buf, '\n');
    if (nl) nl[1] = 0;
    printf("%s", buf);
    return 0;
}
