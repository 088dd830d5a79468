"""The example references a new style may start from ("Try an example" on the new-style page, GET /api/v1/examples).

They live in the examples folder (STYLEDROP_EXAMPLES_DIR, default the repository's examples/): for a world base
model (`shapes`), its held-out style references `shapes/<descriptor with dashes>--<shape>.png`; for the others,
`house.png` (the README's quick start). A client names an example by its id (e.g. "shapes-dusk-striped-on-black--house",
"house") and the server reads the file: an id is looked up in the listing, never joined to a path as given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from styledrop.world.spec import is_world  # torch-free

from ..errors import ApiError
from ..settings import Settings

WORLD_FOLDER = "shapes"  # every world of styledrop.world is a shapes world
# Examples outside a world's folder whose file name does not say what they show: (descriptor, content).
KNOWN = {"house.png": ("flat cartoon illustration", "a house")}


@dataclass(frozen=True)
class Example:
    id: str  # its file's path in the examples folder, "/" as "-", without ".png": "shapes-dusk-striped-on-black--house"
    name: str
    descriptor: str
    content: str
    file: str  # its path in the examples folder (the server's; never sent)

    @property
    def image_url(self) -> str:
        return f"/api/v1/examples/{self.id}/image"

    def out(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "file"} | {"image_url": self.image_url}


def _from_name(file_name: str) -> tuple[str, str] | None:
    """"dusk-striped-on-black--house.png" -> ("dusk striped on black", "a house")."""
    stem = file_name.rsplit(".", 1)[0]
    if "--" not in stem:
        return None
    descriptor, shape = stem.split("--", 1)
    return descriptor.replace("-", " "), f"a {shape.replace('-', ' ')}"


def examples_for(settings: Settings, base_model: str | None) -> list[Example]:
    """The examples that suit `base_model` (the server's default when None), in file-name order."""
    return _listed(settings, world=is_world(base_model or settings.model))


def _listed(settings: Settings, world: bool) -> list[Example]:
    """A world's examples (its folder, every file named for what it shows), or the others."""
    root = settings.examples_dir
    folder = root / WORLD_FOLDER if world else root
    found = []
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        words = _from_name(path.name) if world else KNOWN.get(path.name) or _from_name(path.name)
        if words is None or not path.is_file():
            continue
        descriptor, content = words
        file = path.relative_to(root).as_posix()
        found.append(Example(id=file.removesuffix(".png").replace("/", "-"), name=descriptor.capitalize(),
                             descriptor=descriptor, content=content, file=file))
    return found


def every_example(settings: Settings) -> list[Example]:
    return _listed(settings, world=False) + _listed(settings, world=True)


def find(settings: Settings, ident: str, base_model: str | None = None) -> Example:
    """The example `ident` among those listed (for `base_model` when given); 422 otherwise."""
    listed = examples_for(settings, base_model) if base_model is not None else every_example(settings)
    for example in listed:
        if example.id == ident:
            return example
    raise ApiError(422, "Choose one of the examples shown" + (" for that base model." if base_model else "."))


def read(settings: Settings, example: Example) -> bytes:
    return (settings.examples_dir / example.file).read_bytes()
