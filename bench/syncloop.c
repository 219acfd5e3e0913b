/* The limit for bench/compare.py's "limit" case (issue 7): fsyncprobe's overwrite workload with
 * nothing around it. Lays FILE out as fsyncprobe does (block-sized writes, fsync, then
 * POSIX_FADV_DONTNEED: fsyncprobe/workloads.py, _layout), runs pwrite + fdatasync at rotating
 * offsets for WARMUP seconds, then for SECONDS seconds timing each operation with
 * clock_gettime(CLOCK_MONOTONIC), and prints one JSON line: ops_per_s, p50_ns, p99_ns, mean_ns.
 * The file is removed on exit.
 *
 *     cc -O2 -o syncloop syncloop.c && ./syncloop FILE BLOCK FILE_SIZE SECONDS WARMUP
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s FILE BLOCK FILE_SIZE SECONDS WARMUP\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    long block = atol(argv[2]);
    long long size = atoll(argv[3]);
    double seconds = atof(argv[4]), warmup = atof(argv[5]);
    long page = sysconf(_SC_PAGESIZE);
    long chunk = block > page ? (block + page - 1) / page * page : page;
    long long slots = size / block;
    if (block <= 0 || slots <= 0 || seconds <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char *zeros = calloc(1, chunk), *buf = malloc(block);
    for (long i = 0; i < block; i++)
        buf[i] = (char)rand();
    for (long long off = 0; off < size; off += chunk) {
        long n = size - off < chunk ? (long)(size - off) : chunk;
        if (pwrite(fd, zeros, n, off) != n) {
            perror("layout");
            unlink(path);
            return 1;
        }
    }
    fsync(fd);
    posix_fadvise(fd, 0, size, POSIX_FADV_DONTNEED);

    long long slot = 0, end = now_ns() + (long long)(warmup * 1e9);
    while (now_ns() < end) {
        pwrite(fd, buf, block, slot * block);
        fdatasync(fd);
        if (++slot == slots)
            slot = 0;
    }
    size_t cap = 1 << 16, n = 0;
    long long *lat = malloc(cap * sizeof *lat);
    long long t0 = now_ns(), t1 = t0;
    end = t0 + (long long)(seconds * 1e9);
    do {
        long long a = now_ns();
        if (pwrite(fd, buf, block, slot * block) != block || fdatasync(fd) != 0) {
            perror("write");
            unlink(path);
            return 1;
        }
        t1 = now_ns();
        if (n == cap)
            lat = realloc(lat, (cap *= 2) * sizeof *lat);
        lat[n++] = t1 - a;
        if (++slot == slots)
            slot = 0;
    } while (t1 < end);
    close(fd);
    unlink(path);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, n, sizeof *lat, cmp_ll);
    /* nearest-rank percentiles */
    printf("{\"ops_per_s\": %.3f, \"p50_ns\": %lld, \"p99_ns\": %lld, \"mean_ns\": %.1f, \"ops\": %zu}\n",
           n * 1e9 / (t1 - t0), lat[(n * 50 + 99) / 100 - 1], lat[(n * 99 + 99) / 100 - 1], sum / n, n);
    return 0;
}
