"""The read-only audit console: the federation's logs in a browser (``intelshare console``).

A Starlette application with Jinja2 templates, served by uvicorn, over one
``node.audit.sources.AuditView``: every node's database of a federation directory (or
audit bundles of the same shape). Four pages: the federation (each log's verification
state, its latest checkpoint and who witnessed it, the reconciliation summary), one
node's audit log (filters, keyset pages, entries that fail verification marked), an
item's trace (drawn as inline SVG, each node's label in its own national marking) and
the reconciliation. It opens databases only read-only (``LogSource.session()``), never
reads a private key, and loads nothing from anywhere but itself.

- ``app``: the ASGI application and its guard (credentials, ``Host``, security headers);
- ``pages``: the endpoints; ``web``: links and rendering; ``templates/``, ``static/``;
- ``checks``: verification, checkpoints and witnesses, cached while the logs are unchanged;
- ``logpage``: filters and keyset pages; ``graph``: the trace's layout; ``items``: items in the logs;
- ``access``: the token and auditors' credentials.
"""

from node.console.access import Access, is_loopback
from node.console.app import create_app

__all__ = ["Access", "create_app", "is_loopback"]
