/* Prints the wall clock in nanoseconds: the first thing a benchmark task does, so the
 * benchmark knows when user code began to run. Built static so it runs in any image. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    return 0;
}
