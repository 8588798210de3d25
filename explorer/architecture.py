"""What the Architecture tab computes: Table 1 of the paper measured from the model itself, and the module's diagram."""

from __future__ import annotations

from typing import Any

from explorer.render import ARCHITECTURE_NOTES
from googlenet import GoogLeNet
from googlenet.diagram import inception_diagram
from googlenet.table import architecture_table, table_markdown


def architecture() -> tuple[str, Any]:
    """Table 1 measured from the model, with the paper's inconsistent rows flagged, and the module's diagram."""
    rows = architecture_table(GoogLeNet(aux_logits=False, variant="paper"))
    return table_markdown(rows) + "\n\n" + ARCHITECTURE_NOTES, inception_diagram()
