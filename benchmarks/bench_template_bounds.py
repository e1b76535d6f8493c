"""Worst-case template renders under the default bounds: CPU seconds and peak memory.

Each adversarial template is rendered once with the default TemplateLimits;
most are stopped by the budget. Prints, for each, CPU time (process time,
so neighbours on a shared machine matter less than with wall-clock time),
peak memory (tracemalloc, in a separate pass so its overhead does not count
in the CPU figure), the budget's work units and loop steps, and the ratio to
the bounds the defaults promise (1 s, 64 MB) and to a baseline measured in
the same run: one render of an ordinary mail template.

    python benchmarks/bench_template_bounds.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

from crmrules.rules.templates import (
    DEFAULT_LIMITS,
    CompiledTemplate,
    RenderUsage,
    TemplateRenderError,
    compile_template,
)

KNOWN = frozenset({"client.name", "client.tags", "deal.amount"})
CONTEXT: dict[str, dict[str, object]] = {
    "client": {"name": "Ромашка", "tags": [f"тег{i}" for i in range(1000)]},
    "deal": {"amount": 12},
}
DOUBLE = "{% set a = [client.name] %}" + "{% set a = [a, a] %}" * 40
DOUBLE_B = "{% set b = [client.name] %}" + "{% set b = [b, b] %}" * 40
LOOP = "{% for t in client.tags %}"
LIST = "{% set l = (client.name * 7000) | list %}"
END = "{% endfor %}"
ADVERSARIAL = {
    "nested 3000x3000": "{{ [[client.name]*3000]*3000 }}",
    "20000 x 99999 chars": "{{ [client.name * 14000]*20000 }}",
    "== of 3000x3000": "{{ [[client.name]*3000]*3000 == [[client.name]*3000]*3000 }}",
    "== of 2^40 shared": DOUBLE + DOUBLE_B + "{{ a == b }}",
    "print 2^40 shared": DOUBLE + "{{ a }}",
    "3 nested loops": LOOP * 3 + "{{ t }}" + END * 3,
    "loop building text": LOOP + "{% set s = client.name * 14000 %}{{ s | length }}" + END,
    "loop of compares": LOOP + "{{ [client.tags] == [client.tags] }}" + END,
    "sort/unique in loop": LOOP + "{{ client.tags | sort | unique | length }}" + END,
    "list of a long text": LOOP + "{{ (client.name * 14000) | list | length }}" + END,
    "big ints": "{% set n = 7 ** 1400 %}" + LOOP + "{{ n * n }}" + END,
    "sort 49,000 chars": LIST + LOOP + "{{ l | sort | length }}" + END,
    "unique 49,000 chars": LIST + LOOP + "{{ l | unique | length }}" + END,
    "reverse sort": LIST + LOOP + "{{ l | sort(reverse=true) | first }}" + END,
    "compare 49,000 items": LIST
    + "{% set m = (client.name * 7000) | list %}"
    + LOOP
    + "{{ l == m }}"
    + END,
    "min/max 49,000": LIST + LOOP + "{{ l | min }}{{ l | max }}" + END,
    "join 49,000": LIST + LOOP + "{{ (l | join('')) | length }}" + END,
    "replace in loop": LOOP + "{{ (client.name * 7000) | replace('а', 'бб') | length }}" + END,
    "title in loop": LOOP + "{{ (client.name * 14000) | title | length }}" + END,
    "steps, no output": LOOP + LOOP + "{% set x = t %}" + END + END,
    "many lists kept": "".join(f"{{% set l{i} = (client.name * 7000) | list %}}" for i in range(12))
    + "{{ ["
    + ", ".join(f"l{i} | length" for i in range(12))
    + "] }}",
}
BASELINE = "Здравствуйте, {{ client.name }}! {% for t in client.tags %}{{ t }} {% endfor %}"


def compile_(source: str) -> CompiledTemplate:
    return compile_template(source, "text", KNOWN.__contains__)


def run(template: CompiledTemplate) -> tuple[str, RenderUsage | None]:
    try:
        _, usage = template.render_measured(CONTEXT)
        return "rendered", usage
    except TemplateRenderError as error:
        return f"stopped: {error.message}", None


def cpu(action: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return best


def peak(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    baseline_template = compile_(BASELINE)
    baseline = cpu(lambda: baseline_template.render(CONTEXT), args.repeat)
    print(f"limits: {DEFAULT_LIMITS}")
    print(f"baseline (an ordinary mail template, 1000 tags): {baseline * 1000:.2f} ms CPU\n")
    print(f"{'template':<22} {'CPU ms':>8} {'x base':>8} {'peak MB':>8}  outcome")
    worst_cpu = worst_peak = 0.0
    for name, source in ADVERSARIAL.items():
        template = compile_(source)
        outcome, _ = run(template)
        seconds = cpu(lambda t=template: run(t), args.repeat)  # type: ignore[misc]
        megabytes = peak(lambda t=template: run(t)) / 2**20  # type: ignore[misc]
        worst_cpu, worst_peak = max(worst_cpu, seconds), max(worst_peak, megabytes)
        print(
            f"{name:<22} {seconds * 1000:8.1f} {seconds / baseline:8.0f} {megabytes:8.1f}  "
            f"{outcome[:60]}"
        )
    print(f"\nworst CPU:  {worst_cpu * 1000:.0f} ms = {worst_cpu:.2f}x the 1 s bound")
    print(f"worst peak: {worst_peak:.1f} MB = {worst_peak / 64:.2f}x the 64 MB bound")


if __name__ == "__main__":
    main()
