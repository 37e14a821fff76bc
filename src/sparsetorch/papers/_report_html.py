"""The jinja2 template of the papers' verdict page (`sparsetorch papers report --html`): one static
page, inline CSS, no script, no network; every value is escaped."""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>sparsetorch papers — verdicts</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #222; line-height: 1.4; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.muted { color: #777; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.v-holds { background: #dcf2dc; } .v-partial { background: #fdf0c8; } .v-does-not-hold { background: #f8d7d7; }
.v-stale { background: #eee; } .fail { color: #a00; font-weight: 600; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.95em; }
</style>
</head>
<body>
<h1>sparsetorch papers — verdicts</h1>
<section id="papers">
<h2>Overview</h2>
<p class="muted">A claim check compares means over seeds and passes when the {{ rule }}.
Only claim checks decide a verdict; sanity checks are listed apart.</p>
<table class="overview">
<tr>{% for v in counts %}<th>{{ v }}</th>{% endfor %}</tr>
<tr>{% for v, n in counts.items() %}<td class="num" data-verdict="{{ v }}">{{ n }}</td>{% endfor %}</tr>
</table>
<table class="papers">
<tr><th>#</th><th>key</th><th>axis</th><th>verdict</th><th>claim</th></tr>
{% for r in rows %}
<tr data-key="{{ r.paper.key }}"><td class="num">{{ r.paper.index }}</td><td><a href="#{{ r.paper.key }}"><code>{{ r.paper.key }}</code></a></td>
<td>{{ r.paper.axis.value }}</td><td class="v-{{ r.overview | replace(' ', '-') }}">{{ r.verdict }}</td><td>{{ r.paper.claim }}</td></tr>
{% endfor %}
</table>
</section>
{% for r in rows if r.stored %}
<section class="paper" id="{{ r.paper.key }}" data-key="{{ r.paper.key }}">
<h2>{{ r.paper.index }}. {{ r.paper.key }} — {{ r.verdict }}</h2>
<p>{{ r.paper.claim }}</p>
<p class="muted">scale {{ r.stored.scale }} &middot; seeds {{ r.stored.seeds | join(", ") }} &middot;
commit <code>{{ (r.stored.commit or "unknown")[:12] }}</code> &middot; {{ r.stored.cpu }}</p>
<table class="claims">
<tr><th>claim check</th><th>ours (mean; paired margin [±2 SE])</th><th>paper</th><th>verdict</th></tr>
{% for c, ours in r.claims %}
<tr><td><code>{{ c.name }}</code></td><td>{{ ours }}</td><td>{{ c.paper or "-" }}</td>
<td class="{{ '' if c.passed else 'fail' }}">{{ "pass" if c.passed else "fail" }}</td></tr>
{% endfor %}
</table>
{% if r.sanity %}
<table class="sanity">
<tr><th>sanity check</th><th>ours</th><th>result</th></tr>
{% for c, ours in r.sanity %}
<tr><td><code>{{ c.name }}</code></td><td>{{ ours }}</td><td class="{{ '' if c.passed else 'fail' }}">{{ "pass" if c.passed else "fail" }}</td></tr>
{% endfor %}
</table>
{% endif %}
<p class="muted">{{ r.stored.result.note }}</p>
<p>Re-run: <code>sparsetorch papers run {{ r.paper.key }} --scale {{ r.stored.scale }} --store</code></p>
</section>
{% endfor %}
</body>
</html>
"""
