"""The in-memory store. Expired records are dropped lazily, whenever a lookup meets them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from emulator.models import Account, Generation, PersonImage, Product, StoredFile


@dataclass(slots=True)
class Store:
    accounts: dict[str, Account] = field(default_factory=dict)
    images: dict[str, PersonImage] = field(default_factory=dict)
    products: dict[tuple[str, str], Product] = field(default_factory=dict)
    generations: dict[str, Generation] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def next_seq(self) -> int:
        return next(self._seq)

    def product(self, owner: str, external_id: str, now: float) -> Product | None:
        product = self.products.get((owner, external_id))
        if product is not None and not product.alive(now):
            del self.products[(owner, external_id)]
            return None
        return product

    def product_elsewhere(self, owner: str, external_id: str, now: float) -> bool:
        """Whether another account holds a live product with this id (403, not 404)."""
        return any(
            self.product(key, external_id, now) is not None for key in self.accounts if key != owner
        )

    def listed_products(self, owner: str, now: float) -> list[Product]:
        """Newest first; one-shot products are never listed."""
        live = [
            p
            for (o, ext), p in list(self.products.items())
            if o == owner and p.origin != "one-shot" and self.product(o, ext, now) is not None
        ]
        return sorted(live, key=lambda p: p.seq, reverse=True)

    def image(self, image_id: str, now: float) -> PersonImage | None:
        image = self.images.get(image_id)
        if image is not None and image.expires_at <= now:
            del self.images[image_id]
            self.files.pop(image.preview_key, None)
            return None
        return image

    def file(self, key: str, now: float) -> StoredFile | None:
        stored = self.files.get(key)
        if stored is not None and stored.expires_at <= now:
            del self.files[key]
            return None
        return stored

    def erase_customer(self, owner: str, external_user_id: str) -> None:
        """GDPR erase: person images and results go, generations stay but lose the id."""
        for image_id, image in list(self.images.items()):
            if image.owner == owner and image.external_user_id == external_user_id:
                del self.images[image_id]
        for key, stored in list(self.files.items()):
            if stored.owner == owner and stored.external_user_id == external_user_id:
                del self.files[key]
        for generation in self.generations.values():
            if generation.owner == owner and generation.external_user_id == external_user_id:
                generation.external_user_id = None
                generation.erased = True
                generation.person = b""
                generation.result_key = None
