"""The jinja2 template of `DIR/report.html`: one static page, inline CSS, no script, no network.

Plots arrive as inline SVG markup from matplotlib (marked `| safe`); everything else is escaped.
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.muted { color: #777; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { font-weight: 600; background: #eef8ee; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure.plot { margin: 0; flex: 1 1 480px; max-width: 600px; }
figure.plot svg { width: 100%; height: auto; display: block; }
.status { padding: 0.05rem 0.4rem; border-radius: 0.3rem; font-size: 0.85em; }
.status-complete { background: #dcf2dc; } .status-failed { background: #f8d7d7; }
.status-pending { background: #eee; } .status-running { background: #fdf0c8; }
details { margin: 0.3rem 0; } summary { cursor: pointer; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.85em; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
code { font-size: 0.95em; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="muted">generated {{ generated }}</p>

<section id="summary">
<h2>Summary</h2>
<table class="counts">
<tr><th>runs</th>{% for s, n in counts.items() %}<th>{{ s }}</th>{% endfor %}</tr>
<tr><td class="num">{{ total }}</td>{% for s, n in counts.items() %}<td class="num" data-status="{{ s }}">{{ n }}</td>{% endfor %}</tr>
</table>
{% if not total %}<p class="empty">No runs yet: this bench directory is empty.</p>{% endif %}
{% if tasks %}<p>Tasks: {% for t in tasks %}<a href="#{{ t.anchor }}">{{ t.name }}</a>{% if not loop.last %}, {% endif %}{% endfor %}
&middot; <a href="#failed">failed runs</a> &middot; <a href="#environment">environment</a> &middot; <a href="#runs">all runs</a></p>{% endif %}
</section>

{% for t in tasks %}
<section class="task" id="{{ t.anchor }}" data-task="{{ t.name }}">
<h2>{{ t.name }}</h2>
<p class="muted">version {{ t.version }} &middot; {{ t.kind }} &middot; primary metric <code>{{ t.metric }}</code>
({{ "higher" if t.higher_is_better else "lower" }} is better) &middot;
{% for s, n in t.counts.items() if n %}{{ n }} {{ s }}{% if not loop.last %}, {% endif %}{% endfor %}
{% if t.older %}&middot; {{ t.older }} complete runs of older versions not shown{% endif %}</p>
{% if t.plots %}
<div class="plots">{% for p in t.plots %}<figure class="plot">{{ p | safe }}</figure>{% endfor %}</div>
{% else %}
<p class="no-results">No completed runs for this task{% if t.counts.failed %}: {{ t.counts.failed }} failed, see <a href="#failed">failed runs</a>{% endif %}.</p>
{% endif %}
{% if t.board %}
<h3>Leaderboard</h3>
<table class="leaderboard" data-task="{{ t.name }}">
<tr><th>level</th><th>rank</th><th>method</th><th>{{ t.metric }} mean</th><th>std</th><th>seeds</th></tr>
{% for row in t.board %}
<tr class="{{ 'best' if row.rank == 1 else '' }}"><td>{{ row.level_text }}</td><td class="num">{{ row.rank }}</td>
<td>{{ row.method }}</td><td class="num">{{ row.mean | fmt }}</td><td class="num">{{ row.std | fmt }}</td><td class="num">{{ row.n }}</td></tr>
{% endfor %}
</table>
{% endif %}
</section>
{% endfor %}

<section id="failed">
<h2>Failed runs</h2>
{% for r in failed %}
<details class="failure" data-hash="{{ r.hash }}">
<summary><b>{{ r.task }}</b> &middot; {{ r.method }} &middot; {{ r.level }} &middot; seed {{ r.seed }} &middot;
<code>{{ r.hash[:12] }}</code> &middot; {{ r.last_line }}</summary>
<pre class="traceback">{{ r.error }}</pre>
</details>
{% else %}
<p>None.</p>
{% endfor %}
</section>

<section id="environment">
<h2>Environment</h2>
{% for e in environments %}
<table class="environment">
<tr><th colspan="2">{{ e.runs }} run{{ "s" if e.runs != 1 else "" }}</th></tr>
{% for k, v in e.env.items() %}<tr><td>{{ k }}</td><td><code>{{ v }}</code></td></tr>{% endfor %}
</table>
{% else %}
<p>No run has recorded its environment yet.</p>
{% endfor %}
</section>

<section id="runs">
<h2>All runs</h2>
<table class="runs">
<tr><th>config</th><th>task</th><th>method</th><th>level</th><th>seed</th><th>status</th><th>metric</th><th>value</th><th>attempts</th><th>seconds</th></tr>
{% for r in runs %}
<tr data-hash="{{ r.hash }}"><td>{% if r.href %}<a class="config" href="{{ r.href }}"><code>{{ r.hash[:12] }}</code></a>{% else %}<code title="not started: no config written yet">{{ r.hash[:12] }}</code>{% endif %}</td>
<td>{{ r.task }} v{{ r.version }}</td><td>{{ r.method }}</td><td>{{ r.level }}</td><td class="num">{{ r.seed }}</td>
<td><span class="status status-{{ r.status }}">{{ r.status }}</span></td><td>{{ r.metric }}</td><td class="num">{{ r.value }}</td>
<td class="num">{{ r.attempts }}</td><td class="num">{{ r.seconds }}</td></tr>
{% endfor %}
</table>
</section>
</body>
</html>
"""
