/* bench/compare.py --waker MS: sleep MS milliseconds, over and over, and do nothing else, so
 * that all this process does to its CPU is wake it (README "Performance", "Idle"). In C because
 * a Python sleeper spends more time on the CPU each time it wakes, and that time delays the
 * measured tool's own wake-up when the two coincide (about one operation in a hundred at 10 ms
 * against ~100 us operations: exactly the p99). fio's parent, which this stands in for, is C.
 *
 *     cc -O2 -o waker waker.c && ./waker MS
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    double ms = argc == 2 ? atof(argv[1]) : 0;
    if (ms <= 0 || ms > 1000) {
        fprintf(stderr, "usage: %s MS (0 < MS <= 1000)\n", argv[0]);
        return 2;
    }
    long long ns = (long long)(ms * 1e6);
    struct timespec t = {ns / 1000000000LL, ns % 1000000000LL};
    for (;;)
        nanosleep(&t, NULL);
}
