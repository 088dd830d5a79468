"""The world's pictures for docs/world.md: every shape, and every texture in every palette.

    python bench/world_figures.py --out docs/assets/world
    python bench/world_figures.py --out docs/assets/world --grid bench/results/table2-shapes/grid.png
    python bench/world_figures.py --out docs/assets/world --pages test-artifacts/pages


Writes shapes.png (the twelve shapes at the smallest and largest size, in two styles) and styles.png (the six
textures × eight palettes; * marks what the base model never saw in pretraining); with --grid, a copy of
bench/table2.py's picture grid as table2-grid.png (a palette PNG of a few kilobytes); with --pages, the browser
walk's screenshots on the world (tests/service/browser/test_world_tour.py, run on the standard world) as
pages-*.png, at 70% and 96 colours so that each stays under the docs' 200 KB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# docs picture: the world walk's screenshot it is made from
PAGES = {"pages-style.png": "world-03-rated", "pages-playground.png": "world-07-playground"}


def main(argv: list[str] | None = None) -> int:
    from PIL import Image, ImageDraw

    from styledrop.world import scene as world

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/assets/world")
    parser.add_argument("--grid", default=None, help="bench/table2.py's grid.png, copied as table2-grid.png")
    parser.add_argument("--pages", default=None, help="the world walk's screenshots (test-artifacts/pages)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    side, pad = world.SIDE, 4

    small, large = min(world.SIZES), max(world.SIZES)
    sheet = Image.new("RGB", (len(world.SHAPES) * (side + pad) + pad, 2 * (side + pad) + pad + 14), "white")
    draw = ImageDraw.Draw(sheet)
    for j, shape in enumerate(world.SHAPES):
        x = pad + j * (side + pad)
        draw.text((x, 0), shape, fill="black")
        first = world.Scene(shape, world.Style("fire", "striped", True, "navy"), small, *world.placements(small)[4])
        second = world.Scene(shape, world.Style("candy", "solid", False, "white"), large, *world.placements(large)[0])
        sheet.paste(world.render(first), (x, 14))
        sheet.paste(world.render(second), (x, 14 + side + pad))
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST).save(out / "shapes.png", optimize=True)

    palettes = list(world.PALETTES)
    sheet = Image.new("RGB", (110 + len(palettes) * (side + pad), 16 + len(world.TEXTURES) * (side + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, palette in enumerate(palettes):
        draw.text((110 + j * (side + pad), 2), palette + (" *" if palette in world.UNSEEN_PALETTES else ""),
                  fill="black")
    for i, texture in enumerate(world.TEXTURES):
        y = 16 + i * (side + pad)
        draw.text((4, y + side // 2), texture + (" *" if texture in world.UNSEEN_TEXTURES else ""), fill="black")
        for j, palette in enumerate(palettes):
            style = world.Style(palette, texture, i % 2 == 1, world.BACKGROUNDS[(i + j) % len(world.BACKGROUNDS)])
            sheet.paste(world.render(world.reference_scene(style)), (110 + j * (side + pad), y))
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST).save(out / "styles.png", optimize=True)
    print(f"wrote {out / 'shapes.png'} and {out / 'styles.png'}")
    if args.grid:
        grid = Image.open(args.grid).convert("RGB")  # world colours and text: 64 colours lose only the text's edges
        grid.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(out / "table2-grid.png", optimize=True)
        print(f"wrote {out / 'table2-grid.png'}")
    for name, shot in PAGES.items() if args.pages else ():
        page = Image.open(Path(args.pages) / f"{shot}.png").convert("RGB")
        page = page.resize((page.width * 7 // 10, page.height * 7 // 10), Image.Resampling.LANCZOS)
        page.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out / name,
                                                                                               optimize=True)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
