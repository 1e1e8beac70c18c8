r"""Where the device time of a `jax.profiler` trace goes, as a table: busy time, kernel count and the
most expensive kernels (or, on CPU, XLA thunks) per step.

  python benchmarks/trace_summary.py TRACE_DIR [--steps=10] [--top=25]

Reads the Perfetto JSON (`perfetto_trace.json.gz`) that `jax.profiler.trace(...,
create_perfetto_trace=True)` writes under TRACE_DIR/plugins/profile/<run>/ (the newest run), so a
trace taken on the GPU machine can be read without TensorBoard. Events are complete ("X") events of
the device processes (`/device:GPU:n`); without one (a CPU trace) the XLA executor threads of
`/host:CPU` stand in. Times are divided by `--steps` (the number of steps traced).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os

# Host thread names whose events are XLA's own work on CPU (not Python or the runtime's bookkeeping).
_CPU_WORK_THREADS = ("tf_XLAPjRtCpuClient", "tf_XLAEigen")
_BOOKKEEPING = ("ThreadpoolListener", "ThunkExecutor", "end: ")


def find_trace(trace_dir: str) -> str:
  """The newest perfetto_trace.json.gz under trace_dir."""
  paths = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
  if not paths:
    raise FileNotFoundError(
        f"no perfetto_trace.json.gz under {trace_dir} (trace with create_perfetto_trace=True)"
    )
  return max(paths, key=os.path.getmtime)


def _device_events(events: list[dict]) -> tuple[str, list[dict]]:
  """(which processes were used, their complete events): GPU processes, else XLA's CPU threads."""
  procs = {
      e["pid"]: e["args"]["name"]
      for e in events
      if e.get("ph") == "M" and e.get("name") == "process_name"
  }
  threads = {
      (e["pid"], e.get("tid")): e["args"]["name"]
      for e in events
      if e.get("ph") == "M" and e.get("name") == "thread_name"
  }
  complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
  gpu = {pid for pid, name in procs.items() if "/device:GPU" in name}
  if gpu:
    return "gpu", [e for e in complete if e["pid"] in gpu]
  cpu = [
      e
      for e in complete
      if threads.get((e["pid"], e.get("tid")), "").startswith(_CPU_WORK_THREADS)
      and not e["name"].startswith(_BOOKKEEPING)
  ]
  return "cpu", cpu


def _busy_us(events: list[dict]) -> float:
  """Length of the union of the events' [ts, ts + dur) intervals (overlaps counted once)."""
  total, end = 0.0, float("-inf")
  for start, stop in sorted((e["ts"], e["ts"] + e["dur"]) for e in events):
    if stop <= end:
      continue
    total += stop - max(start, end)
    end = stop
  return total


def summarize(trace_dir: str, *, steps: int = 1, top: int = 25) -> dict:
  """Per-step busy time, kernel count, kernel-duration histogram and the `top` kernels by time.

  Returns:
    {"source", "steps", "span_us", "busy_us", "kernels", "short_kernel_share" (share of kernels
     under 5 µs), "top": [{"name", "us", "count", "mean_us", "share"}]}, times and counts per step.
  """
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  with gzip.open(find_trace(trace_dir), "rt", encoding="utf-8") as f:
    data = json.load(f)
  source, events = _device_events(data["traceEvents"] if isinstance(data, dict) else data)
  if not events:
    raise ValueError(f"the trace under {trace_dir} has no device or XLA events")
  by_name = collections.defaultdict(lambda: [0.0, 0])
  for e in events:
    row = by_name[e["name"]]
    row[0] += e["dur"]
    row[1] += 1
  total = sum(e["dur"] for e in events)
  rows = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]
  return {
      "source": source,
      "steps": steps,
      "span_us": (max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)) / steps,
      "busy_us": _busy_us(events) / steps,
      "kernels": len(events) / steps,
      "short_kernel_share": sum(e["dur"] < 5 for e in events) / len(events),
      "top": [
          {
              "name": name,
              "us": us / steps,
              "count": count / steps,
              "mean_us": us / count,
              "share": us / total,
          }
          for name, (us, count) in rows
      ],
  }


def format_summary(s: dict) -> str:
  """The summary as a few lines of text and a markdown table."""
  lines = [
      f"{s['source']} trace, per step (of {s['steps']}): span {s['span_us'] / 1e3:.2f} ms, busy "
      f"{s['busy_us'] / 1e3:.2f} ms, {s['kernels']:.0f} kernels "
      f"({100 * s['short_kernel_share']:.0f} % under 5 µs)",
      "",
      "| kernel | ms/step | calls/step | mean µs | share |",
      "|---|---|---|---|---|",
  ]
  for r in s["top"]:
    name = r["name"] if len(r["name"]) <= 80 else r["name"][:77] + "..."
    lines.append(
        f"| `{name}` | {r['us'] / 1e3:.3f} | {r['count']:.1f} | {r['mean_us']:.1f} | "
        f"{100 * r['share']:.1f} % |"
    )
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("trace_dir")
  parser.add_argument("--steps", type=int, default=1)
  parser.add_argument("--top", type=int, default=25)
  args = parser.parse_args()
  print(format_summary(summarize(args.trace_dir, steps=args.steps, top=args.top)))


if __name__ == "__main__":
  main()
