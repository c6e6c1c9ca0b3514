/* A test program for mcexec: prints its arguments and part of its
 * environment, writes and reads back a file, allocates and touches memory,
 * and reports what it saw so the test can compare it with Linux. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv, char **envp) {
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "PROBE_", 6) == 0)
            printf("env %s\n", *e);
    const char *path = getenv("PROBE_FILE");
    if (path) {
        int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
        if (fd < 0) { perror("open"); return 2; }
        const char msg[] = "written on the LWK\n";
        if (write(fd, msg, sizeof msg - 1) != sizeof msg - 1) { perror("write"); return 3; }
        char buf[64] = {0};
        if (pread(fd, buf, sizeof buf - 1, 0) != sizeof msg - 1) { perror("pread"); return 4; }
        close(fd);
        printf("file %s", buf);
    }
    const char *mb = getenv("PROBE_ALLOC_MB");
    if (mb) {
        size_t n = (size_t)atol(mb) << 20;
        unsigned char *p = malloc(n);
        if (!p) { printf("malloc failed\n"); return 5; }
        for (size_t i = 0; i < n; i += 4096) p[i] = (unsigned char)(i >> 12);
        unsigned long sum = 0;
        for (size_t i = 0; i < n; i += 4096) sum += p[i];
        printf("touched %zu MiB sum %lu\n", n >> 20, sum);
        free(p);
    }
    return 0;
}
