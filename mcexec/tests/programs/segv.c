/* Writes through a bad pointer: the LWK must end it with SIGSEGV and log
 * Linux's segfault line. */
#include <stdio.h>
int main(void) {
    printf("about to fault\n");
    fflush(stdout);
    *(volatile int *)16 = 1;
    return 0;
}
