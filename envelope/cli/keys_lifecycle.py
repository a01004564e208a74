"""``envelope keys`` rotation and deletion: a key's backing keys over time, and its end.

``enable-rotation``, ``disable-rotation``, ``rotation-status`` and ``rotate``
(aws kms: ``enable-key-rotation``, ``disable-key-rotation``,
``get-key-rotation-status`` / ``list-key-rotations``, ``rotate-key-on-demand``);
``schedule-deletion`` and ``cancel-deletion`` (``schedule-key-deletion``,
``cancel-key-deletion``); and ``maintain``, which performs the rotations and
deletions that are due.  Registered by :mod:`.keys`, in its place in the list
of actions.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import kms_shapes as aws_json
from .keys_common import KEY_HELP, Handler, Option, add_action, emit, open_store

if TYPE_CHECKING:
    from ..kms.model.keys import RotationStatus

#: aws kms's verb that lists a key's rotations (``rotation-status --json`` is its schedule).
LIST_ROTATIONS = "list-key-rotations"


def register(actions: Any) -> None:
    def action(name: str, handler: Handler, help_: str, *args: Option, aws: Sequence[str] = ()) -> None:
        add_action(actions, name, handler, help_, *args, aws=aws, key=KEY_HELP)

    action("enable-rotation", cmd_enable_rotation, "rotate the key's backing key automatically",
           (["--period-days", "--rotation-period-in-days"], {"type": int, "metavar": "N",
                                                            "help": "days between rotations, 90-2560 (default 365)"}),
           aws=["enable-key-rotation"])
    action("disable-rotation", cmd_disable_rotation, "stop automatic rotation (backing keys are kept)",
           aws=["disable-key-rotation"])
    action("rotation-status", cmd_rotation_status, "show the rotation schedule and every backing key",
           aws=["get-key-rotation-status", LIST_ROTATIONS])
    action("rotate", cmd_rotate, "rotate now: a new backing key; older ones keep decrypting",
           aws=["rotate-key-on-demand"])
    action("schedule-deletion", cmd_schedule_deletion, "schedule the key's destruction after a waiting period",
           (["--days", "--pending-window-in-days"], {"type": int, "metavar": "N",
                                                    "help": "waiting period, 7-30 days (default 30)"}),
           aws=["schedule-key-deletion"])
    action("cancel-deletion", cmd_cancel_deletion, "cancel a scheduled deletion (the key comes back Disabled)",
           aws=["cancel-key-deletion"])
    add_action(actions, "maintain", cmd_maintain, "perform due automatic rotations and scheduled deletions")


def cmd_enable_rotation(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "EnableKeyRotation", KeyId=args.key,
                                               RotationPeriodInDays=args.period_days))
        return _show_rotation(args, store.enable_key_rotation(args.key, args.period_days))


def cmd_disable_rotation(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "DisableKeyRotation", KeyId=args.key))
        return _show_rotation(args, store.disable_key_rotation(args.key))


def cmd_rotation_status(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:  # aws kms answers the two verbs with two shapes: the schedule, or the rotations
            operation = "ListKeyRotations" if args.keys_command == LIST_ROTATIONS else "GetKeyRotationStatus"
            return aws_json.show(aws_json.call(store, operation, KeyId=args.key))
        return _show_rotation(args, store.get_key_rotation_status(args.key))


def cmd_rotate(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "RotateKeyOnDemand", KeyId=args.key))
        rotation = store.rotate_key_on_demand(args.key)
        key_id = store.resolve_key_id(args.key)
    return emit(args, {"key_id": key_id, **rotation.to_dict()},
                f"key {key_id} rotated: backing key {rotation.version} now encrypts; older ones still decrypt")


def cmd_schedule_deletion(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "ScheduleKeyDeletion", KeyId=args.key,
                                               PendingWindowInDays=args.days))
        plan = store.schedule_key_deletion(args.key, args.days)
    return emit(args, plan.to_dict(),
                f"key {plan.key_id} is {plan.state}: its material will be destroyed on {plan.deletion_date} "
                f"(cancel before then with: envelope keys cancel-deletion {plan.key_id})")


def cmd_cancel_deletion(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "CancelKeyDeletion", KeyId=args.key))
        meta = store.cancel_key_deletion(args.key)
    return emit(args, meta.to_dict(), f"deletion cancelled: key {meta.key_id} is {meta.state} "
                                      f"(enable it with: envelope keys enable {meta.key_id})")


def cmd_maintain(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        report = store.maintain()
    lines = [f"rotated {k}" for k in report.rotated] + [f"deleted {k}" for k in report.deleted]
    return emit(args, report.to_dict(), lines or "nothing due")


def _show_rotation(args: argparse.Namespace, status: RotationStatus) -> int:
    lines = [f"key {status.key_id}: automatic rotation "
             + (f"enabled, every {status.rotation_period_days} days, next on {status.next_rotation_date}"
                if status.rotation_enabled else "disabled")]
    lines += [f"  backing key {r.version}: {r.created_at} ({(r.rotation_type or 'original').lower()})"
              for r in status.rotations]
    return emit(args, status.to_dict(), lines)
