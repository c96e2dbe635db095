"""List the adverse action notices that have not gone out (due and overdue), and the messages to customers whose
denial no longer stands that have not gone out; with --prepare, do what is left (state the reasons, render, send;
send the messages' e-mails) for each; with --fail-on-overdue, exit 1 when any notice is overdue (for cron)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.adverse import adverse_action_prepare, decisions_needing_adverse_action, notices_due
from audit.customer_messages import customer_message_deliver_due, customer_messages_due


class Command(BaseCommand):
    help = "List adverse action notices due and overdue (Reg B 1002.9(a)(1))."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prepare", action="store_true", help="Prepare and send what is left, here and now.")
        parser.add_argument("--fail-on-overdue", action="store_true", help="Exit with status 1 if any is overdue.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["prepare"]:
            for decision_id in decisions_needing_adverse_action():
                result = adverse_action_prepare(decision_id=decision_id)
                self.stdout.write(f"decision {decision_id}: reasons {'yes' if result.statement else 'no'}, "
                                  f"notice {'yes' if result.notice else 'no'}, sent {'yes' if result.sent else 'no'}")
            for message, sent in customer_message_deliver_due():
                self.stdout.write(f"customer message {message.public_id}: sent {'yes' if sent else 'no'}")
        items = notices_due()
        overdue = [item for item in items if item.overdue]
        for item in items:
            self.stdout.write(f"{'OVERDUE' if item.overdue else 'due    '} {item.due_at:%Y-%m-%d} "
                              f"decision {item.decision.public_id} "
                              f"{item.notice.reference if item.notice else '-'}: {item.problem}")
        self.stdout.write(f"{len(items)} due, {len(overdue)} overdue")
        for due in customer_messages_due():
            message = due.message
            self.stdout.write(f"message {message.created_at:%Y-%m-%d} decision {message.decision.public_id} "
                              f"{', '.join(n.reference for n in message.notices.all())}: {due.problem}")
        if overdue and options["fail_on_overdue"]:
            raise CommandError(f"{len(overdue)} adverse action notice(s) overdue")
