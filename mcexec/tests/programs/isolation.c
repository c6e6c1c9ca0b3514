/* Isolation of LWK processes (issue 20, item 4), two roles:
 *   hold   maps a page at ADDR, writes a secret there, prints "held <pid>",
 *          and keeps it until its stdin ends
 *   peek   (another user) at the same ADDR: a fresh mapping there must read
 *          zeroes, not the secret ("fresh"); after unmapping it, reading
 *          ADDR must kill it with SIGSEGV (nothing of the other process is
 *          mapped in its address space) */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ADDR ((void *)0x1a5a00000000UL) /* inside the LWK user range (abi offload.rs) */
static const char secret[] = "secret-of-the-holder";

static char *map_at(void) {
    char *p = mmap(ADDR, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "hold")) {
        char *p = map_at();
        if (p != ADDR)
            return 1;
        memcpy(p, secret, sizeof secret);
        printf("held %d\n", getpid());
        char b[16];
        while (read(0, b, sizeof b) > 0)
            ;
        return memcmp(p, secret, sizeof secret) != 0;
    }
    if (argc > 1 && !strcmp(argv[1], "peek")) {
        char *p = map_at();
        if (p != ADDR) {
            printf("address taken\n");
            return 1;
        }
        for (int i = 0; i < 4096; i++)
            if (p[i]) {
                printf("saw %.20s\n", p);
                return 1;
            }
        printf("fresh\n");
        munmap(p, 4096);
        printf("reading\n");
        volatile char c = *(volatile char *)ADDR;
        printf("read %d\n", c);
        return 1;
    }
    return 2;
}
