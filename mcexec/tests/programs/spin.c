/* Computes forever in user mode (no system calls) after saying so. */
#include <unistd.h>
int main(void) {
    write(1, "spinning\n", 9);
    volatile unsigned long x = 0;
    for (;;)
        x++;
}
