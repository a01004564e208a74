"""The management operations of the server: keys, aliases, tags, rotation, deletion, policies, grants, import.

See :mod:`.operations` for the contract of a handler.  Listings page with
AWS's ``Limit`` and ``Marker``: the marker is the position of the next entry,
opaque to clients as AWS's is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..kms.model.keys import KeyMetadata
from ..kms.policy.principal import from_arn
from . import errors
from .wire import Wire

if TYPE_CHECKING:
    from ..kms.store import KeyStore

Handler = Callable[["KeyStore", dict[str, Any], Wire], dict[str, Any]]

POLICY_NAME = "default"
_ORIGINS = {"AWS_KMS": "ENVELOPE", "EXTERNAL": "EXTERNAL"}
_DEFAULT_LIMIT = 100


def metadata(meta: KeyMetadata, wire: Wire) -> dict[str, Any]:
    """AWS's KeyMetadata of a keystore key."""
    from ..kms.crypto import asymmetric

    symmetric = meta.key_spec == "SYMMETRIC_DEFAULT"
    hmac = meta.key_spec.startswith("HMAC_")
    doc: dict[str, Any] = {
        "AWSAccountId": wire.account, "KeyId": meta.key_id, "Arn": wire.key_arn(meta.key_id),
        "CreationDate": meta.created_at, "Enabled": meta.enabled, "Description": meta.description,
        "KeyUsage": meta.key_usage, "KeyState": meta.state, "DeletionDate": meta.deletion_date,
        "Origin": "AWS_KMS" if meta.origin == "ENVELOPE" else meta.origin, "KeyManager": meta.key_manager,
        "CustomerMasterKeySpec": meta.key_spec, "KeySpec": meta.key_spec, "MultiRegion": meta.multi_region,
    }
    if symmetric:
        doc["EncryptionAlgorithms"] = ["SYMMETRIC_DEFAULT"]
    elif hmac:
        doc["MacAlgorithms"] = list(asymmetric.mac_algorithms(meta.key_spec))
    else:
        doc["EncryptionAlgorithms"] = list(asymmetric.encryption_algorithms(meta.key_spec, meta.key_usage)) or None
        doc["SigningAlgorithms"] = list(asymmetric.signing_algorithms(meta.key_spec, meta.key_usage)) or None
    if meta.multi_region:
        primary = meta.primary_region or wire.region
        doc["MultiRegionConfiguration"] = {
            "MultiRegionKeyType": meta.multi_region_role,
            "PrimaryKey": {"Arn": wire.key_arn(meta.key_id, primary), "Region": primary},
            "ReplicaKeys": [],
        }
    return doc


def _page(req: dict[str, Any], items: Sequence[Any], member: str) -> dict[str, Any]:
    limit = req.get("Limit", _DEFAULT_LIMIT)
    marker = req.get("Marker")
    try:
        start = int(marker) if marker is not None else 0
    except ValueError:
        raise errors.InvalidMarkerException("the marker is not one this server issued") from None
    if start < 0 or start > len(items):
        raise errors.InvalidMarkerException("the marker is not one this server issued")
    page = items[start:start + limit]
    result: dict[str, Any] = {member: list(page), "Truncated": start + limit < len(items)}
    if result["Truncated"]:
        result["NextMarker"] = str(start + limit)
    return result


def _tags(req: dict[str, Any]) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in req.get("Tags", ())}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())]


def _policy_name(req: dict[str, Any]) -> None:
    if req.get("PolicyName", POLICY_NAME) != POLICY_NAME:
        raise errors.NotFoundException(f"a key has one policy, named {POLICY_NAME}")


def create_key(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    origin = req.get("Origin", "AWS_KMS")
    if origin not in _ORIGINS:
        raise errors.UnsupportedOperationException(f"Origin {origin} is not supported (AWS_KMS or EXTERNAL)")
    if req.get("CustomKeyStoreId") or req.get("XksKeyId"):
        raise errors.UnsupportedOperationException("custom key stores are not supported")
    spec = req.get("KeySpec", req.get("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"))
    meta = store.create_key(req.get("Description", ""), tags=_tags(req), policy=req.get("Policy"),
                            origin=_ORIGINS[origin], key_spec=spec, key_usage=req.get("KeyUsage"),
                            multi_region=req.get("MultiRegion", False),
                            bypass_policy_lockout_safety_check=req.get("BypassPolicyLockoutSafetyCheck", False))
    return {"KeyMetadata": metadata(meta, wire)}


def describe_key(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    return {"KeyMetadata": metadata(store.describe_key(wire.ref(req["KeyId"])), wire)}


def list_keys(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    keys = [{"KeyId": m.key_id, "KeyArn": wire.key_arn(m.key_id)} for m in store.list_keys()]
    return _page(req, keys, "Keys")


def enable_key(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.enable_key(wire.ref(req["KeyId"]))
    return {}


def disable_key(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.disable_key(wire.ref(req["KeyId"]))
    return {}


def update_key_description(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.update_key_description(wire.ref(req["KeyId"]), req["Description"])
    return {}


def create_alias(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.create_alias(req["AliasName"], wire.ref(req["TargetKeyId"]))
    return {}


def update_alias(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.update_alias(req["AliasName"], wire.ref(req["TargetKeyId"]))
    return {}


def delete_alias(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.delete_alias(req["AliasName"])
    return {}


def list_aliases(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    key = wire.ref(req["KeyId"]) if "KeyId" in req else None
    aliases = [{"AliasName": a.alias_name, "AliasArn": wire.alias_arn(a.alias_name), "TargetKeyId": a.key_id,
                "CreationDate": a.created_at, "LastUpdatedDate": a.created_at} for a in store.list_aliases(key)]
    return _page(req, aliases, "Aliases")


def tag_resource(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.tag_key(wire.ref(req["KeyId"]), _tags(req))
    return {}


def untag_resource(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.untag_key(wire.ref(req["KeyId"]), req["TagKeys"])
    return {}


def list_resource_tags(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    return _page(req, _tag_list(store.list_tags(wire.ref(req["KeyId"]))), "Tags")


def enable_key_rotation(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.enable_key_rotation(wire.ref(req["KeyId"]), req.get("RotationPeriodInDays"))
    return {}


def disable_key_rotation(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.disable_key_rotation(wire.ref(req["KeyId"]))
    return {}


def get_key_rotation_status(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    status = store.get_key_rotation_status(wire.ref(req["KeyId"]))
    return {"KeyRotationEnabled": status.rotation_enabled, "KeyId": wire.key_arn(status.key_id),
            "RotationPeriodInDays": status.rotation_period_days, "NextRotationDate": status.next_rotation_date}


def rotate_key_on_demand(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    ref = wire.ref(req["KeyId"])
    store.rotate_key_on_demand(ref)
    return {"KeyId": store.resolve_key_id(ref)}


def list_key_rotations(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    status = store.get_key_rotation_status(wire.ref(req["KeyId"]))
    rotations = [{"KeyId": status.key_id, "RotationDate": r.created_at, "RotationType": r.rotation_type}
                 for r in status.rotations if r.rotation_type is not None]  # AWS lists rotations, not the original
    return _page(req, rotations, "Rotations")


def schedule_key_deletion(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    schedule = store.schedule_key_deletion(wire.ref(req["KeyId"]), req.get("PendingWindowInDays"))
    return {"KeyId": wire.key_arn(schedule.key_id), "DeletionDate": schedule.deletion_date,
            "KeyState": schedule.state, "PendingWindowInDays": schedule.pending_window_days}


def cancel_key_deletion(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    meta = store.cancel_key_deletion(wire.ref(req["KeyId"]))
    return {"KeyId": wire.key_arn(meta.key_id)}


def get_key_policy(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    import json

    _policy_name(req)
    return {"Policy": json.dumps(store.get_key_policy(wire.ref(req["KeyId"]))), "PolicyName": POLICY_NAME}


def put_key_policy(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    _policy_name(req)
    store.put_key_policy(wire.ref(req["KeyId"]), req["Policy"],
                         bypass_policy_lockout_safety_check=req.get("BypassPolicyLockoutSafetyCheck", False))
    return {}


def list_key_policies(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.get_key_policy(wire.ref(req["KeyId"]))  # the key must exist and the caller see its policy
    return {"PolicyNames": [POLICY_NAME], "Truncated": False}


def create_grant(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    retiring = from_arn(req["RetiringPrincipal"]) if "RetiringPrincipal" in req else None
    grant_id, token = store.create_grant(wire.ref(req["KeyId"]), from_arn(req["GranteePrincipal"]),
                                         req["Operations"], retiring_principal=retiring,
                                         constraints=req.get("Constraints"), name=req.get("Name"))
    return {"GrantId": grant_id, "GrantToken": token}


def _grant_entries(grants: Sequence[Any], wire: Wire) -> list[dict[str, Any]]:
    entries = []
    for grant in grants:
        entry = grant.as_dict()
        entry["KeyId"] = wire.key_arn(grant.key_id)
        entry["IssuingAccount"] = wire.account
        entry["Constraints"] = entry["Constraints"] or None
        entries.append(entry)
    return entries


def list_grants(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    grantee = from_arn(req["GranteePrincipal"]) if "GranteePrincipal" in req else None
    grants = store.list_grants(wire.ref(req["KeyId"]), req.get("GrantId"), grantee)
    return _page(req, _grant_entries(grants, wire), "Grants")


def list_retirable_grants(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    grants = store.list_retirable_grants(from_arn(req["RetiringPrincipal"]))
    return _page(req, _grant_entries(grants, wire), "Grants")


def retire_grant(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    key = wire.ref(req["KeyId"]) if "KeyId" in req else None
    store.retire_grant(req.get("GrantToken"), key=key, grant_id=req.get("GrantId"))
    return {}


def revoke_grant(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.revoke_grant(wire.ref(req["KeyId"]), req["GrantId"])
    return {}


def get_parameters_for_import(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    params = store.get_parameters_for_import(wire.ref(req["KeyId"]), req["WrappingAlgorithm"],
                                             req["WrappingKeySpec"])
    return {"KeyId": wire.key_arn(params.key_id), "ImportToken": params.import_token, "PublicKey": params.public_key,
            "ParametersValidTo": params.parameters_valid_to}


def import_key_material(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    expires = req.get("ExpirationModel", "KEY_MATERIAL_EXPIRES" if "ValidTo" in req else "KEY_MATERIAL_DOES_NOT_EXPIRE")
    if (expires == "KEY_MATERIAL_EXPIRES") != ("ValidTo" in req):
        raise errors.ValidationException("ValidTo is required with KEY_MATERIAL_EXPIRES, and only with it")
    store.import_key_material(wire.ref(req["KeyId"]), req["ImportToken"], req["EncryptedKeyMaterial"],
                              req.get("ValidTo"))
    return {}


def delete_imported_key_material(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    store.delete_imported_key_material(wire.ref(req["KeyId"]))
    return {}


def replicate_key(store: KeyStore, req: dict[str, Any], wire: Wire) -> dict[str, Any]:
    region = req["ReplicaRegion"]
    meta = store.replicate_key(wire.ref(req["KeyId"]), region, description=req.get("Description"))
    doc = metadata(meta, Wire(region, wire.account))
    return {"ReplicaKeyMetadata": doc, "ReplicaTags": _tag_list(meta.tag_dict)}


KEY_OPERATIONS: dict[str, Handler] = {
    "CreateKey": create_key,
    "DescribeKey": describe_key,
    "ListKeys": list_keys,
    "EnableKey": enable_key,
    "DisableKey": disable_key,
    "UpdateKeyDescription": update_key_description,
    "CreateAlias": create_alias,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListResourceTags": list_resource_tags,
    "EnableKeyRotation": enable_key_rotation,
    "DisableKeyRotation": disable_key_rotation,
    "GetKeyRotationStatus": get_key_rotation_status,
    "RotateKeyOnDemand": rotate_key_on_demand,
    "ListKeyRotations": list_key_rotations,
    "ScheduleKeyDeletion": schedule_key_deletion,
    "CancelKeyDeletion": cancel_key_deletion,
    "GetKeyPolicy": get_key_policy,
    "PutKeyPolicy": put_key_policy,
    "ListKeyPolicies": list_key_policies,
    "CreateGrant": create_grant,
    "ListGrants": list_grants,
    "ListRetirableGrants": list_retirable_grants,
    "RetireGrant": retire_grant,
    "RevokeGrant": revoke_grant,
    "GetParametersForImport": get_parameters_for_import,
    "ImportKeyMaterial": import_key_material,
    "DeleteImportedKeyMaterial": delete_imported_key_material,
    "ReplicateKey": replicate_key,
}
