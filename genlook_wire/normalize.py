"""Every accepted request shape, deprecated ones included, reduced to one canonical input.

Deprecated shapes (still accepted by Genlook, "not a breaking change"):
`product` -> `products[0]`; `customer.source` and flat `customer.{id|url|fileKey}` ->
`person.image.source`; `customerId` -> `externalUserId`; `useWatermark` -> `output.watermark`;
`retentionDays` -> `output.keepForDays`; flat image entries `{url}`/`{fileKey, classifications}`
-> `{source, classifications}`; `imageUrls` -> `images`. When both the canonical and the
deprecated field are present, the canonical one wins, except `products` + `product`, which is
rejected as ambiguous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from genlook_wire.errors import ApiError, FieldIssue, validation_failed
from genlook_wire.ids import ANON_PREFIX
from genlook_wire.zod import Issues, Path, coerce_form_number


@dataclass(slots=True)
class ImageInput:
    url: str | None
    file_key: str | None
    classifications: dict[str, Any] | None = None
    role: str | None = None


@dataclass(slots=True)
class ProductInput:
    """Fields a client sent for one product; UNSET means "leave as it is"."""

    external_id: str | None
    title: str | UnsetType | None = UNSET
    description: str | UnsetType | None = UNSET
    images: list[ImageInput] | UnsetType = UNSET
    metadata: Any = UNSET
    valid_for_days: int | UnsetType | None = UNSET
    auto_detect_image_roles: bool | UnsetType = UNSET

    @property
    def is_reference(self) -> bool:
        """Only an externalId: the cheap call that needs an existing product."""
        return (
            self.title is UNSET
            and self.description is UNSET
            and self.images is UNSET
            and self.metadata is UNSET
        )

    def file_keys(self) -> list[str]:
        if isinstance(self.images, UnsetType):
            return []
        return [img.file_key for img in self.images if img.file_key is not None]


@dataclass(frozen=True, slots=True)
class PersonSource:
    kind: Literal["id", "url", "fileKey"]
    value: str


@dataclass(slots=True)
class TryOnInput:
    product: ProductInput
    person: PersonSource
    external_user_id: str | None = None
    watermark: bool = True
    keep_for_days: int | None = None
    ai_label: bool = False
    file_keys: list[str] = field(default_factory=list)


def parse_json(raw: bytes, path: str = "") -> Any:
    """A JSON body (or multipart `data` field, `path`) as Genlook refuses a bad one."""
    if not raw.strip():
        raise validation_failed([FieldIssue(path=path, message="Required")])
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise validation_failed([FieldIssue(path=path, message="Invalid JSON")]) from None


def _image_entry(entry: object, path: Path, issues: Issues) -> ImageInput | None:
    obj = issues.obj(entry, path)
    if obj is None:
        return None
    source_path: Path = path
    source: dict[str, Any] = obj
    if "source" in obj:
        source_path = [*path, "source"]
        found = issues.obj(obj["source"], source_path)
        if found is None:
            return None
        source = found
    url = issues.string(source, "url", source_path)
    key = issues.string(source, "fileKey", source_path)
    classifications: dict[str, Any] | None = None
    if obj.get("classifications") is not None:
        classifications = issues.obj(obj["classifications"], [*path, "classifications"])
    role = issues.string(obj, "role", path)
    return ImageInput(
        url=url or None, file_key=key or None, classifications=classifications, role=role
    )


def _images(obj: dict[str, Any], path: Path, issues: Issues) -> list[ImageInput] | UnsetType:
    if "images" in obj:
        entries = issues.array(obj["images"], [*path, "images"])
        if entries is None:
            return UNSET
        images = [_image_entry(e, [*path, "images", i], issues) for i, e in enumerate(entries)]
        return [img for img in images if img is not None]
    if "imageUrls" in obj:
        urls = issues.array(obj["imageUrls"], [*path, "imageUrls"])
        if urls is None:
            return UNSET
        result: list[ImageInput] = []
        for i, url in enumerate(urls):
            if isinstance(url, str):
                result.append(ImageInput(url=url or None, file_key=None))
            else:
                issues.expected([*path, "imageUrls", i], "string", url)
        return result
    return UNSET


def _product(obj: dict[str, Any], path: Path, issues: Issues) -> ProductInput:
    product = ProductInput(external_id=issues.string(obj, "externalId", path))
    for key, attr in (("title", "title"), ("description", "description")):
        if key in obj:
            value = obj[key]
            if value is None or isinstance(value, str):
                setattr(product, attr, value)
            else:
                issues.expected([*path, key], "string", value)
    product.images = _images(obj, path, issues)
    if "metadata" in obj:
        product.metadata = obj["metadata"]
    if "validForDays" in obj:
        raw = obj["validForDays"]
        if raw is None:
            product.valid_for_days = None
        else:
            days = issues.integer(raw, [*path, "validForDays"], minimum=1, maximum=365)
            if days is not None:
                product.valid_for_days = days
    auto = issues.boolean(obj, "autoDetectImageRoles", path)
    if auto is not None:
        product.auto_detect_image_roles = auto
    return product


def _check_image_inputs(product: ProductInput) -> None:
    if isinstance(product.images, UnsetType):
        return
    for i, img in enumerate(product.images):
        if (img.url is None) == (img.file_key is None):
            raise ApiError(
                400,
                "INVALID_IMAGE_INPUT",
                f"Image {i} must have exactly one of `source.url` or `source.fileKey`.",
            )


def _reject_reserved(external_id: str | None) -> None:
    if external_id is not None and external_id.startswith(ANON_PREFIX):
        raise ApiError(
            409,
            "RESERVED_EXTERNAL_ID",
            f"externalId '{external_id}' uses the reserved prefix '{ANON_PREFIX}'.",
        )


def product_upsert(body: object) -> ProductInput:
    """`POST /products` body."""
    issues = Issues()
    obj = issues.obj(body, [])
    issues.raise_if_any()
    assert obj is not None
    raw_id = obj.get("externalId")
    if raw_id is None or raw_id == "":
        raise ApiError(400, "EXTERNAL_ID_REQUIRED", "`externalId` is required.")
    product = _product(obj, [], issues)
    issues.raise_if_any()
    _check_image_inputs(product)
    _reject_reserved(product.external_id)
    return product


def _person(obj: dict[str, Any], issues: Issues) -> PersonSource | None:
    if "person" in obj:
        person = issues.obj(obj["person"], ["person"])
        if person is None:
            return None
        if "image" not in person:
            issues.add(["person", "image"], "Required")
            return None
        image = issues.obj(person["image"], ["person", "image"])
        if image is None:
            return None
        if "source" not in image:
            issues.add(["person", "image", "source"], "Required")
            return None
        path: Path = ["person", "image", "source"]
        source = issues.obj(image["source"], path)
    else:
        customer = issues.obj(obj["customer"], ["customer"])
        if customer is None:
            return None
        path = ["customer"]
        source = customer
        if "source" in customer:
            path = ["customer", "source"]
            source = issues.obj(customer["source"], path)
    if source is None:
        return None
    found: list[PersonSource] = []
    for kind in ("id", "url", "fileKey"):
        value = issues.string(source, kind, path)
        if value:
            found.append(PersonSource(kind=kind, value=value))
    if len(found) != 1 and not issues.items:
        issues.add(path, "Exactly one of `id`, `url` or `fileKey` is required")
        return None
    return found[0] if found else None


def _try_on_product(obj: dict[str, Any], issues: Issues) -> ProductInput | None:
    if "products" in obj and "product" in obj:
        issues.add(["product"], "Send either `products` or the deprecated `product`, not both")
        return None
    if "product" in obj:
        item = issues.obj(obj["product"], ["product"])
        return None if item is None else _product(item, ["product"], issues)
    if "products" not in obj:
        issues.add(["products"], "Required")
        return None
    items = issues.array(obj["products"], ["products"])
    if items is None:
        return None
    if len(items) != 1:
        issues.add(["products"], "Array must contain exactly 1 element(s)")
        return None
    item = issues.obj(items[0], ["products", 0])
    return None if item is None else _product(item, ["products", 0], issues)


def try_on(body: object) -> TryOnInput:
    """`POST /try-on` and `/try-on/sync` body."""
    issues = Issues()
    obj = issues.obj(body, [])
    issues.raise_if_any()
    assert obj is not None
    if "person" not in obj and "customer" not in obj:
        # Also what the removed alpha body {productId, customerImageId} gets.
        raise ApiError(
            400, "CUSTOMER_IMAGE_REQUIRED", "A person image is required (`person.image.source`)."
        )
    product = _try_on_product(obj, issues)
    person = _person(obj, issues)

    user_id = issues.string(obj, "externalUserId", [])
    legacy_user_id = issues.string(obj, "customerId", [])
    watermark = issues.boolean(obj, "useWatermark", [])
    keep: int | None = None
    if obj.get("retentionDays") is not None:
        keep = issues.retention(obj["retentionDays"], ["retentionDays"])
    ai_label: bool | None = None
    if obj.get("output") is not None:
        output = issues.obj(obj["output"], ["output"])
        if output is not None:
            watermark = _prefer(issues.boolean(output, "watermark", ["output"]), watermark)
            if output.get("keepForDays") is not None:
                keep = issues.retention(output["keepForDays"], ["output", "keepForDays"])
            ai_label = issues.boolean(output, "aiLabel", ["output"])
    issues.raise_if_any()
    assert product is not None
    assert person is not None
    _check_image_inputs(product)
    if not product.is_reference:
        _reject_reserved(product.external_id)
    result = TryOnInput(
        product=product,
        person=person,
        external_user_id=user_id or legacy_user_id or None,
        watermark=True if watermark is None else watermark,
        keep_for_days=keep,
        ai_label=bool(ai_label),
    )
    result.file_keys = product.file_keys()
    if person.kind == "fileKey":
        result.file_keys.append(person.value)
    return result


def _prefer(canonical: bool | None, deprecated: bool | None) -> bool | None:
    return deprecated if canonical is None else canonical


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """The text fields of `POST /images/upload`."""

    crop: bool
    keep_for_days: int | None
    external_user_id: str | None


def _upload_keep_for_days(fields: dict[str, str], issues: Issues) -> int | None:
    for name in ("keepForDays", "retentionDays"):
        raw = fields.get(name)
        if raw:
            value = coerce_form_number(raw)
            if math.isnan(value):
                issues.add([name], "Expected number, received nan")
                return None
            return issues.retention(int(value) if value.is_integer() else value, [name])
    return None


def upload_options(fields: dict[str, str]) -> UploadOptions:
    """`POST /images/upload` form fields, deprecated `customerId`/`retentionDays` included.
    `crop`: anything but "false" (any case) is true (guess 15)."""
    issues = Issues()
    keep = _upload_keep_for_days(fields, issues)
    issues.raise_if_any()
    return UploadOptions(
        crop=fields.get("crop", "true").strip().lower() != "false",
        keep_for_days=keep,
        external_user_id=fields.get("externalUserId") or fields.get("customerId") or None,
    )
