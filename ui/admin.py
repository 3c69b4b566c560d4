"""Accounts and the audit trail (admin), and the login dialog (everyone).

Every account change goes to the audit trail with its old and new value (a PIN's value is never
written, only that it changed). The audit table shows the newest changes first: recipes,
thresholds, roles, activations, starts and stops.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aoi.app.station import Station
from aoi.storage.db import DB_ERRORS
from aoi.storage.queries import audit_events
from ui.logic.users import Role, User, UserError, UserStore
from ui.widgets import local_time, panel


class LoginDialog(QDialog):
    """Name and PIN; while no admin exists it creates the first admin account instead."""

    def __init__(
        self,
        store: UserStore,
        reason: str = "",
        parent: QWidget | None = None,
        audit: Callable[[str, str, str | None, str | None], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.audit = audit
        self.user: User | None = None
        self.first_admin = not store.has_admin()
        self.setWindowTitle("Create the first admin" if self.first_admin else "Log in")
        layout = QVBoxLayout(self)
        if reason:
            note = QLabel(reason)
            note.setWordWrap(True)
            layout.addWidget(note)
        if self.first_admin:
            note = QLabel(
                "No admin account exists yet. Create it now: it can then add "
                "engineers and operators."
            )
            note.setWordWrap(True)
            note.setObjectName("dim")
            layout.addWidget(note)
        form = QFormLayout()
        self.name = QLineEdit()
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Name", self.name)
        form.addRow("PIN or password", self.secret)
        self.again = QLineEdit()
        self.again.setEchoMode(QLineEdit.EchoMode.Password)
        if self.first_admin:
            form.addRow("Again", self.again)
        layout.addLayout(form)
        self.message = QLabel("")
        self.message.setStyleSheet("color: #ff8a80;")
        layout.addWidget(self.message)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.try_accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def try_accept(self) -> None:
        name, secret = self.name.text().strip(), self.secret.text()
        try:
            if self.first_admin:
                if secret != self.again.text():
                    self.message.setText("The two entries differ.")
                    return
                self.user = self.store.add(name, Role.ADMIN, secret)
                if self.audit is not None:  # who holds the keys is in the trail from the start
                    self.audit(name, f"user {name}", None, "admin (first admin, created here)")
            else:
                self.user = self.store.authenticate(name, secret)
        except UserError as err:
            self.message.setText(str(err))
            return
        if self.user is None:
            self.message.setText("Unknown name or wrong PIN.")
            self.secret.clear()
            return
        self.accept()


class AdminScreen(QWidget):
    """Users and roles; the audit trail."""

    def __init__(self, station: Station, store: UserStore, who: Callable[[], str]) -> None:
        super().__init__()
        self.station = station
        self.store = store
        self.who = who
        root = QHBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)

        users_panel, ul = panel("Users")
        self.users = QTableWidget(0, 2)
        self.users.setHorizontalHeaderLabels(["name", "role"])
        self.users.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.users.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.users.verticalHeader().setVisible(False)
        self.users.horizontalHeader().setStretchLastSection(True)
        ul.addWidget(self.users, 1)
        form = QFormLayout()
        self.name = QLineEdit()
        self.role = QComboBox()
        self.role.addItems([r.label for r in Role])
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Name", self.name)
        form.addRow("Role", self.role)
        form.addRow("PIN or password", self.secret)
        ul.addLayout(form)
        row = QHBoxLayout()
        for text, action in (
            ("Add user", self.add_user),
            ("Set role", self.set_role),
            ("Set PIN", self.set_secret),
            ("Remove", self.remove_user),
        ):
            b = QPushButton(text)
            b.clicked.connect(action)
            row.addWidget(b)
        ul.addLayout(row)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        ul.addWidget(self.message)
        root.addWidget(users_panel, 2)

        audit_panel, al = panel("Audit trail (newest first, last 30 days)")
        self.audit = QTableWidget(0, 5)
        self.audit.setHorizontalHeaderLabels(["when", "who", "what", "old value", "new value"])
        self.audit.verticalHeader().setVisible(False)
        self.audit.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.audit.horizontalHeader().setStretchLastSection(True)
        for col, w in enumerate((150, 110, 330, 140)):
            self.audit.setColumnWidth(col, w)
        al.addWidget(self.audit, 1)
        root.addWidget(audit_panel, 5)
        self.users.currentCellChanged.connect(lambda *_: self._pick())

    def _pick(self) -> None:
        row = self.users.currentRow()
        if row >= 0 and self.users.item(row, 0) is not None:
            self.name.setText(self.users.item(row, 0).text())
            self.role.setCurrentText(self.users.item(row, 1).text())

    def reload(self) -> None:
        try:
            users = self.store.users()
        except UserError as err:
            self._say(str(err), ok=False)
            users = []
        self.users.setRowCount(len(users))
        for r, u in enumerate(users):
            self.users.setItem(r, 0, QTableWidgetItem(u.name))
            self.users.setItem(r, 1, QTableWidgetItem(u.role.label))
        if self.station.storage is None:
            return
        try:
            events = audit_events(
                self.station.storage.db, datetime.now(UTC) - timedelta(days=30), limit=300
            )
        except DB_ERRORS as err:
            self._say(f"Audit trail unavailable: {str(err).splitlines()[0]}", ok=False)
            return
        self.audit.setRowCount(len(events))
        for r, e in enumerate(events):
            when = local_time(e.at).strftime("%Y-%m-%d %H:%M:%S")
            for c, text in enumerate((when, e.who, e.what, e.old_value or "", e.new_value or "")):
                self.audit.setItem(r, c, QTableWidgetItem(text))
        for column in range(4):
            self.audit.resizeColumnToContents(column)

    def _say(self, text: str, *, ok: bool) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {'#7ee2a8' if ok else '#ff8a80'};")

    def _apply(self, what: str, change: Callable[[], tuple[str | None, str | None]]) -> bool:
        """Make an account change and audit it; a change the audit cannot record is undone."""
        try:
            old, new = change()
        except UserError as err:
            self._say(str(err), ok=False)
            return False
        try:
            self.station.audit(self.who(), what, old, new)
        except DB_ERRORS as err:
            self._say(f"Changed, but the audit trail failed: {str(err).splitlines()[0]}", ok=False)
            return False
        self._say(f"{what}: {old or '—'} → {new or '—'}", ok=True)
        self.secret.clear()
        self.reload()
        return True

    def add_user(self) -> bool:
        name, role = self.name.text().strip(), Role[self.role.currentText().upper()]
        return self._apply(
            f"user {name}",
            lambda: (None, self.store.add(name, role, self.secret.text()).role.label),
        )

    def set_role(self) -> bool:
        name, role = self.name.text().strip(), Role[self.role.currentText().upper()]
        return self._apply(
            f"user {name}: role", lambda: (self.store.set_role(name, role).label, role.label)
        )

    def set_secret(self) -> bool:
        name = self.name.text().strip()

        def change() -> tuple[str | None, str | None]:
            self.store.set_secret(name, self.secret.text())
            return "(hidden)", "(changed)"

        return self._apply(f"user {name}: PIN", change)

    def remove_user(self) -> bool:
        name = self.name.text().strip()
        return self._apply(f"user {name}", lambda: (self.store.remove(name).label, None))

    def showEvent(self, event: object) -> None:  # noqa: N802
        super().showEvent(event)  # type: ignore[arg-type]
        self.reload()
