"""Make the published asv dashboard work without internet: its scripts from vendor/.

asv 0.6 writes ``html/index.html`` loading jQuery, flot, bootstrap,
blueimp-md5 and stupidtable from CDNs, so offline it shows nothing. This
copies ``vendor/`` (the same libraries, from the npm registry; licences in
``vendor/licenses``) to ``html/vendor/`` and points every ``<script>`` and
stylesheet ``<link>`` there. The CDNs' subresource-integrity hashes are
dropped with the URLs: cdnjs serves its own minified builds. A CDN file not
in :data:`VENDORED` (a newer asv) is an error, not a silently broken page.

Run after ``asv publish``, in this folder::

    ../.venv/bin/asv publish && ../.venv/bin/python offline_dashboard.py
"""

import pathlib
import re
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent

# The CDN file's name -> its copy under vendor/.
VENDORED = {
    "jquery-3.3.1.min.js": "jquery.min.js",
    "jquery.flot.min.js": "jquery.flot.js",
    "jquery.flot.time.min.js": "jquery.flot.time.js",
    "jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.min.js",
    "md5.min.js": "md5.min.js",
    "bootstrap.min.js": "bootstrap/js/bootstrap.min.js",
    "bootstrap.min.css": "bootstrap/css/bootstrap.min.css",
}

_REMOTE_TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>')


def localise(html: str) -> str:
    """``html`` with every remote script and stylesheet pointing at ``vendor/``."""

    def local(match):
        tag, url = match.group(0), match.group(2)
        name = url.rsplit("/", 1)[-1]
        if name not in VENDORED:
            raise SystemExit(f"offline_dashboard.py: no vendored copy of {url}; add it to vendor/")
        tag = tag.replace(url, f"vendor/{VENDORED[name]}")
        return re.sub(r'\s+(integrity|crossorigin)="[^"]*"', "", tag)

    return _REMOTE_TAG.sub(local, html)


def main(html_dir=HERE / "html") -> None:
    html_dir = pathlib.Path(html_dir)
    shutil.copytree(HERE / "vendor", html_dir / "vendor", dirs_exist_ok=True)
    for page in html_dir.glob("*.html"):
        page.write_text(localise(page.read_text()))


if __name__ == "__main__":
    main(*sys.argv[1:])
