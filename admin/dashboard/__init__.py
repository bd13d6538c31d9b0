"""The dashboard: server-rendered pages at /dashboard for people who sign in with an API key,
over the same services as the JSON API (admin/service), never HTTP to itself.

app        the sub-application: templates, routes, middlewares, static files
viewer     sessions as the pages see them: the cookie, the key behind it, CSRF tokens
forms      bounded form bodies, checked for their CSRF token
errors     every failure as an HTML page with a 4xx status (503 when Redis is away)
signin     sign in (a key -> a session cookie) and sign out
campaigns  the campaigns of the workspace, a new campaign, a campaign's page and chart
links      a link's page: destination, edits, QR code, stats
send       a CSV of recipients made into links, its progress and its links CSV
upload     the CSV upload, parsed and checked as it streams in (bounded memory)
charts     the clicks chart (pygal SVG, drawn on the server: no script)
report     attribution figures of issue 11, read where the report exists
present    how numbers, times and money are written on the pages
"""
