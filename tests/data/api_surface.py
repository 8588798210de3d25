"""The app's API as scripts and assistants see it, reduced to what they rely on: for every named endpoint its
arguments (name, whether it has a default, the default, the Python type, the component) and its outputs (Python type
and component), and the MCP tools with their arguments. ``api_surface.json`` holds the copy the API tests compare
with, recorded from the app as it was before its pages were split (``python tests/data/api_surface.py URL`` prints
the endpoints of a running app); an issue that adds an endpoint or an argument updates it in the same commit."""

from __future__ import annotations

import json
import re
import sys
from typing import Any


# Arguments whose choices are the server's runs or a picture's top classes at the time (any value is accepted):
# their type is compared without the choices; a run's default is the newest run there is (none without runs).
CHANGING = {"model", "compare", "run", "names", "class_index"}
RUNS = {"run", "names"}


def tools(schema: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Gradio's MCP schema (``/gradio_api/mcp/schema``) as {tool: its arguments}, without a Space's prefix."""
    return {t["name"].split("_", 1)[1] if t["name"].startswith("inception-explorer_") else t["name"]:
            sorted(t["inputSchema"].get("properties", {})) for t in sorted(schema, key=lambda t: t["name"])}


def surface(info: dict[str, Any]) -> dict[str, Any]:
    """``Client.view_api(return_format="dict")`` without what only a page shows (labels, examples, descriptions)."""
    def kind(entry: dict[str, Any]) -> str:
        text = entry.get("python_type", {}).get("type", "")
        return re.sub(r"Literal\[[^\]]*\]", "Literal[...]", text) if entry.get("parameter_name") in CHANGING else text

    def default(entry: dict[str, Any]) -> list[Any]:
        fixed = entry["parameter_name"] not in RUNS
        return [entry["parameter_has_default"] and fixed, entry["parameter_default"] if fixed else None]

    return {name: {"parameters": [[p["parameter_name"], *default(p), kind(p), p["component"]]
                                  for p in endpoint["parameters"]],
                   "returns": [[kind(r), r["component"]] for r in endpoint["returns"]]}
            for name, endpoint in sorted(info["named_endpoints"].items())}


if __name__ == "__main__":
    from gradio_client import Client

    print(json.dumps(surface(Client(sys.argv[1], verbose=False).view_api(print_info=False, return_format="dict")),
                     indent=1))
