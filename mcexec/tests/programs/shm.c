/* Shared memory on the LWK (share windows): MAP_SHARED|MAP_ANONYMOUS and a
 * process-shared semaphore across fork, a memfd read back with pread, SysV
 * shm across fork, and a /dev/shm file (argv[1]) shared with a Linux
 * process: we write "from-lwk" at offset 0, then wait for the Linux side
 * to store 'L' at offset 2048 of the same file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what) { perror(what); return 1; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return fail("mmap shared anon");
    pid_t c = fork();
    if (c == 0) { p[0] = 42; _exit(0); }
    waitpid(c, 0, 0);
    printf("anon %d\n", p[0]);
    sem_t *s = (sem_t *)(p + 16);
    sem_init(s, 1, 0);
    c = fork();
    if (c == 0) { usleep(50000); p[1] = 7; sem_post(s); _exit(0); }
    sem_wait(s);
    waitpid(c, 0, 0);
    printf("sem %d\n", p[1]);

    int m = memfd_create("lwk-test", 0);
    if (m < 0 || ftruncate(m, 8192)) return fail("memfd");
    char *q = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    if (q == MAP_FAILED) return fail("mmap memfd");
    strcpy(q + 4096, "hello");
    char buf[8] = {0};
    pread(m, buf, 5, 4096);
    printf("memfd %s\n", buf);

    int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
    char *v = shmat(id, NULL, 0);
    if (v == (void *)-1) return fail("shmat");
    shmctl(id, IPC_RMID, NULL);
    c = fork();
    if (c == 0) { v[9999] = 9; _exit(0); }
    waitpid(c, 0, 0);
    int seen = v[9999];
    printf("sysv %d shmdt %d\n", seen, shmdt(v));

    int f = open(argv[1], O_RDWR);
    if (f < 0) return fail(argv[1]);
    volatile char *r = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    if (r == MAP_FAILED) return fail("mmap file");
    strcpy((char *)r, "from-lwk");
    for (int i = 0; i < 60000 && r[2048] != 'L'; i++) usleep(1000);
    printf("linux %c\n", r[2048]);
    return 0;
}
