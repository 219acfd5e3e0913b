"""`fsyncprobe watch`: passive observation of real processes (pmxcfs, corosync) with bpftrace.

`script` generates the bpftrace program, `runner` runs it and reads its JSON output, `types`
holds the frozen results a report carries. Nothing here writes to any disk.
"""
