"""check — the crash-test checker (docs/testing.md).

Input: the producers' outcome files (crashdrv produce: one line per
attempt, "ok|fail|unk run producer seq0 n partition offset|error") and a
full dump of the topic (crashdrv dump: "R part start hw", "D part offset
value", "E part offset error").  Output: a Report of violations:

  lost            an acknowledged value is not at the offset it was acked at
  duplicates      a value stored more often than it was sent with an ok or
                  unknown outcome (only a retried unknown explains a copy)
  changed         an offset whose value differs from an earlier dump
                  (after a restart)
  order           a producer's values out of sequence within a partition
  failed_visible  a value whose every attempt was refused is visible
  gaps            offsets between log start and high watermark not read
  phantom         a visible value nobody sent

Usable alone: python3 check.py OUTCOME_FILE... -- DUMP_FILE
"""

import re
import sys

VALUE_RE = re.compile(r"^r(\d+)\.p(\d+)\.s(\d+)$")


class Attempts:
    __slots__ = ("ok", "fail", "unk")

    def __init__(self):
        self.ok = []      # (partition, offset)
        self.fail = 0
        self.unk = 0


def read_outcomes(paths):
    """value -> Attempts, from complete lines of the outcome files."""
    att = {}
    for path in paths:
        try:
            with open(path) as f:
                data = f.read()
        except FileNotFoundError:
            continue
        for line in data.split("\n")[:-1]:  # a last partial line is skipped
            parts = line.split()
            if len(parts) != 7:
                raise ValueError("%s: bad outcome line %r" % (path, line))
            kind, run, p, seq0, n, part = parts[:6]
            seq0, n, part = int(seq0), int(n), int(part)
            for i in range(n):
                v = "r%s.p%s.s%d" % (run, p, seq0 + i)
                a = att.get(v)
                if a is None:
                    a = att[v] = Attempts()
                if kind == "ok":
                    a.ok.append((part, int(parts[6]) + i))
                elif kind == "fail":
                    a.fail += 1
                elif kind == "unk":
                    a.unk += 1
                else:
                    raise ValueError("%s: bad outcome kind %r" % (path, kind))
    return att


class Dump:
    def __init__(self, path):
        self.ranges = {}   # partition -> (start, hw)
        self.values = {}   # (partition, offset) -> value
        self.errors = []   # (partition, offset, message)
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 3)
                if parts[0] == "R":
                    self.ranges[int(parts[1])] = (int(parts[2]), int(parts[3]))
                elif parts[0] == "D":
                    self.values[(int(parts[1]), int(parts[2]))] = parts[3]
                elif parts[0] == "E":
                    self.errors.append((int(parts[1]), int(parts[2]),
                                        parts[3] if len(parts) > 3 else ""))


class Report:
    FIELDS = ("lost", "duplicates", "unexplained_duplicates", "changed", "order",
              "failed_visible", "gaps", "phantom")

    def __init__(self):
        self.acked = 0
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self.examples = []
        self.lost = set()   # (value, partition, offset): counted once

    def add(self, field, n=1, example=None):
        self.counts[field] += n
        if example is not None and len(self.examples) < 20:
            self.examples.append("%s: %s" % (field, example))

    def violations(self):
        return sum(v for k, v in self.counts.items() if k != "duplicates")

    def merge(self, other):
        for k in self.FIELDS:
            if k != "lost":
                self.counts[k] += other.counts[k]
        self.lost |= other.lost
        self.counts["lost"] = len(self.lost)
        self.examples.extend(other.examples[:max(0, 20 - len(self.examples))])


def check_changed(dump, seen, rep):
    """Offsets read before must keep their value; remembers the new ones."""
    for key, v in dump.values.items():
        old = seen.get(key)
        if old is None:
            seen[key] = v
        elif old != v:
            rep.add("changed", 1, "partition %d offset %d was %s, now %s" % (key[0], key[1], old, v))


def check_acked(att, dump, rep):
    """Every acknowledged value is at its acknowledged offset."""
    for v, a in att.items():
        for part, off in a.ok:
            rep.acked += 1
            got = dump.values.get((part, off))
            if got != v and (v, part, off) not in rep.lost:
                rep.lost.add((v, part, off))
                start, hw = dump.ranges.get(part, (0, 0))
                rep.add("lost", 1, "%s acked at partition %d offset %d, found %s (log %d..%d)"
                        % (v, part, off, got, start, hw))


def check_final(att, dump, rep):
    """The full check, once every producer has stopped."""
    check_acked(att, dump, rep)
    count = {}
    by_stream = {}
    for (part, off) in sorted(dump.values):
        v = dump.values[(part, off)]
        count[v] = count.get(v, 0) + 1
        m = VALUE_RE.match(v)
        if m is None or v not in att:
            rep.add("phantom", 1, "partition %d offset %d: %r" % (part, off, v))
            continue
        run, p, seq = int(m.group(1)), int(m.group(2)), int(m.group(3))
        by_stream.setdefault((run, p, part), []).append((off, seq))
    for v, n in count.items():
        a = att.get(v)
        if a is None:
            continue
        if not a.ok and a.unk == 0:
            rep.add("failed_visible", 1, "%s refused %d times but visible" % (v, a.fail))
        if n > 1:
            rep.add("duplicates", n - 1)
            if a.unk == 0 or n > len(a.ok) + a.unk:
                rep.add("unexplained_duplicates", n - 1,
                        "%s stored %d times, %d ok + %d unknown attempts" % (v, n, len(a.ok), a.unk))
    for (run, p, part), seqs in by_stream.items():
        # A retried batch repeats its values after the first copy; the
        # order is that of first copies (repeats are judged above).
        firsts, had = [], set()
        for o, sq in seqs:
            if sq not in had:
                had.add(sq)
                firsts.append((o, sq))
        for (o1, s1), (o2, s2) in zip(firsts, firsts[1:]):
            if s2 < s1:
                rep.add("order", 1, "run %d producer %d partition %d: seq %d at offset %d "
                        "after seq %d at %d" % (run, p, part, s2, o2, s1, o1))
    for part, (start, hw) in sorted(dump.ranges.items()):
        missing = [o for o in range(start, hw) if (part, o) not in dump.values]
        if missing:
            rep.add("gaps", len(missing), "partition %d: %d offsets of %d..%d unread, first %d"
                    % (part, len(missing), start, hw, missing[0]))
    for part, off, msg in dump.errors:
        rep.add("gaps", 0, "partition %d stopped at offset %d: %s" % (part, off, msg))


def selftest(tmpdir):
    """Each kind of violation, fabricated, must be reported (and a clean
    history must pass): proof that the checker can fail.  Returns a list of
    problems (empty: fine)."""
    import os
    out = os.path.join(tmpdir, "selftest.out")
    dump = os.path.join(tmpdir, "selftest.dump")
    clean_out = ["ok 1 0 0 2 0 0", "unk 1 0 2 1 0 5", "ok 1 0 2 1 0 3", "fail 1 0 3 1 0 X"]
    clean_dump = ["R 0 0 4", "D 0 0 r1.p0.s0", "D 0 1 r1.p0.s1", "D 0 2 r1.p0.s2",
                  "D 0 3 r1.p0.s2"]  # the copy of s2 is explained by its unk
    cases = [
        (None, clean_out, clean_dump),
        ("lost", clean_out, ["R 0 0 4", "D 0 0 r1.p0.s0", "D 0 1 r1.p0.s9", "D 0 2 r1.p0.s2",
                             "D 0 3 r1.p0.s2"]),
        ("unexplained_duplicates", clean_out, clean_dump[:3] + ["D 0 3 r1.p0.s1", "R 0 0 4"]),
        ("order", ["ok 1 0 0 1 0 1", "ok 1 0 1 1 0 0"],
         ["R 0 0 2", "D 0 0 r1.p0.s1", "D 0 1 r1.p0.s0"]),
        ("failed_visible", clean_out, clean_dump + ["D 0 4 r1.p0.s3", "R 0 0 5"]),
        ("gaps", clean_out, ["R 0 0 5"] + clean_dump[1:]),
        ("phantom", clean_out, clean_dump + ["D 0 4 hello", "R 0 0 5"]),
    ]
    problems = []
    for want, o, d in cases:
        with open(out, "w") as f:
            f.write("\n".join(o) + "\n")
        with open(dump, "w") as f:
            f.write("\n".join(d) + "\n")
        rep = Report()
        check_final(read_outcomes([out]), Dump(dump), rep)
        got = [k for k, v in rep.counts.items() if v and k != "duplicates"]
        if (want is None and got) or (want is not None and want not in got):
            problems.append("selftest: want %s, got %s" % (want or "no violation", got or "none"))
    # changed: an offset whose value differs from an earlier dump
    seen, rep = {}, Report()
    with open(dump, "w") as f:
        f.write("R 0 0 1\nD 0 0 r1.p0.s0\n")
    check_changed(Dump(dump), seen, rep)
    with open(dump, "w") as f:
        f.write("R 0 0 1\nD 0 0 r1.p0.s7\n")
    check_changed(Dump(dump), seen, rep)
    if rep.counts["changed"] != 1:
        problems.append("selftest: a changed offset went unnoticed")
    return problems


def main(argv):
    if "--" not in argv:
        print("usage: check.py OUTCOME_FILE... -- DUMP_FILE", file=sys.stderr)
        return 2
    i = argv.index("--")
    att = read_outcomes(argv[:i])
    rep = Report()
    check_final(att, Dump(argv[i + 1]), rep)
    for e in rep.examples:
        print("  " + e)
    print("check: acked=%d %s outcome=%s" % (rep.acked, " ".join(
        "%s=%d" % kv for kv in rep.counts.items()), "FAIL" if rep.violations() else "PASS"))
    return 1 if rep.violations() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
