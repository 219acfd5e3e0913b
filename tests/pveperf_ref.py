"""pveperf's fsync loop (pve-manager bin/pveperf, test_fsync) in Perl, with pveperf's own statements:
the reference that tests/test_measure_realfs.py and bench/compare.py hold fsyncprobe's `pveperf` and
`pveperf-durable` workloads against. Needs Debian's perl and libfile-sync-perl (File::Sync, as pveperf).

    perl -e PERL_PVEPERF DIR SECONDS MAX_OPS DURABLE   # prints count / elapsed

As pveperf, it measures in a new directory DIR/ptest.PID and removes it afterwards, untimed; so
given the same DIR it writes at the depth fsyncprobe's private DIR/fsyncprobe-XXXX does, each in a
directory made just before its first operation.
"""

from __future__ import annotations

# pveperf's test_fsync (pve-manager bin/pveperf), its own statements: mkdir "$basedir/ptest.$$";
# open '>' (create or truncate) one of 300 rotating files, `print` 4,001 bytes, File::Sync::fsync,
# close; count / elapsed once the time is up (or, given MAX > 0, after MAX operations); then
# pveperf's `rm -rf` of the directory (here unlink and rmdir, no shell). The `print` only fills
# PerlIO's buffer and File::Sync::fsync does not flush it, so the system calls are openat(O_TRUNC),
# PerlIO's ioctl(TCGETS), lseek and fstat, fsync, write(4001), close (tests/test_measure_realfs.py
# checks it with strace). DURABLE = 1 flushes the buffer before the fsync (IO::Handle's flush):
# what pveperf means to do, the calls of `pveperf-durable`.
PERL_PVEPERF = r"""
use strict; use warnings; use File::Sync; use IO::Handle; use Time::HiRes qw(gettimeofday tv_interval);
my ($base, $secs, $max, $durable) = @ARGV; my $data = ('A' x 4000) . "\n";
my $dir = "$base/ptest.$$"; mkdir($dir) || die "mkdir failed: $!";
my $t0 = [gettimeofday]; my ($count, $el);
for ($count = 1;; $count++) {
    my $m = $count % 300;
    open(TMP, ">$dir/tf_$m.dat") || die "open failed: $!";
    print TMP $data;
    TMP->flush if $durable;
    File::Sync::fsync(\*TMP);
    close(TMP);
    $el = tv_interval($t0); last if $el > $secs or ($max and $count >= $max);
}
printf "%.3f\n", $count / $el;
unlink(glob("$dir/tf_*.dat")); rmdir($dir) || die "rmdir failed: $!";
"""
PERL_CMD = ("perl", "-e", PERL_PVEPERF)
"""The command before its four arguments: DIR SECONDS MAX_OPS (0: none) DURABLE (0 or 1); it measures
in DIR/ptest.PID."""
