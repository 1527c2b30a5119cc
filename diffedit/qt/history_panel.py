"""The History dock: every undo step by name; clicking one goes back (or forward) to it.

Row 0 is the state before the first kept step, row k the state after k steps, so the current row is
always `history.index` and undone steps stay listed (greyed) until a new edit discards them.
"""

from __future__ import annotations

from PySide6.QtGui import QBrush, QPalette
from PySide6.QtWidgets import QDockWidget, QListWidget, QListWidgetItem, QWidget

from diffedit.document.document import Document
from diffedit.qt.bindings import Connections


class HistoryPanel(QDockWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("History", parent)
        self.setObjectName("history-panel")
        self.doc: Document | None = None
        self._conns = Connections()
        self._updating = False
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._on_current_row)
        self.setWidget(self.list)

    def set_document(self, doc: Document | None) -> None:
        self._conns.clear()
        self.doc = doc
        if doc is not None:
            self._conns.connect(doc.history.changed, self._rebuild)
        self._rebuild()

    def _rebuild(self) -> None:
        self._updating = True
        try:
            self.list.clear()
            doc = self.doc
            if doc is None:
                return
            history = doc.history
            dropped = history.position - history.index
            first = "Older steps (dropped to save memory)" if dropped else ("Opened" if doc.path else "New document")
            grey = QBrush(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
            for i, text in enumerate([first, *history.steps]):
                item = QListWidgetItem(text)
                if i > history.index:
                    item.setForeground(grey)
                    item.setToolTip("Undone: click to redo up to here")
                self.list.addItem(item)
            self.list.setCurrentRow(history.index)
            self.list.scrollToItem(self.list.currentItem())
        finally:
            self._updating = False

    def _on_current_row(self, row: int) -> None:
        if self._updating or self.doc is None or row < 0 or row == self.doc.history.index:
            return
        self.doc.history.goto(row)
