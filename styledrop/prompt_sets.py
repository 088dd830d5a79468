"""Content prompts: the candidate pool's and the held-out evaluation list. Torch-free: the app imports it.

Two lists that never meet. CONTENT_PROMPTS feed the candidate pools of iterative training (paper §3.3):
they are deliberately diverse — different from any one reference's content — so that selecting images
with high CLIP *text* scores favours style without the reference's content leaking in. A pool is drawn
across every category (`diverse_prompts`), never from the first category alone.

EVAL_PROMPTS are for `styledrop eval` and the service's evaluation job: held out from every candidate pool,
so a round-2 model is never scored on prompts whose best images it was trained on. The paper used 190
Parti prompts (its abstract, arts, people and world-knowledge categories dropped); Parti is not shipped
here, so this list is our own writing over the same kinds of subjects — pass the Parti file with
`--prompts` for the paper's exact protocol.
"""

from __future__ import annotations

import unicodedata
from itertools import chain, zip_longest
from pathlib import Path

from .errors import StyleDropError

CONTENT_PROMPTS: dict[str, list[str]] = {
    "animals": ["a chihuahua", "a cat sleeping on a sofa", "a fox in the snow", "an owl on a branch",
                "a horse running in a field", "a goldfish in a bowl", "a penguin on the ice", "a butterfly"],
    "objects": ["a banana on the table", "a teapot", "an alarm clock", "a pair of sneakers",
                "a guitar leaning on a wall", "a bouquet of flowers in a vase", "a laptop on a desk", "an umbrella"],
    "scenes": ["a mountain lake at sunrise", "a forest path in autumn", "a desert with cacti", "a waterfall",
               "a snowy village at night", "a beach with palm trees", "a city skyline at dusk", "a wheat field"],
    "people": ["a woman reading a book", "a man playing the violin", "a child flying a kite", "a chef cooking",
               "an astronaut", "a dancer mid-leap", "an old fisherman", "a couple walking in the rain"],
    "vehicles": ["a red bicycle", "a vintage car", "a steam train", "a sailboat on the sea",
                 "a hot air balloon", "a motorcycle", "a city bus", "an airplane in the clouds"],
    "food": ["a bowl of ramen", "a slice of pizza", "a stack of pancakes", "a cup of coffee",
             "a basket of strawberries", "a birthday cake", "a burger and fries", "a loaf of bread"],
    "buildings": ["a church on the beach", "a lighthouse on a cliff", "a castle on a hill", "a wooden cabin",
                  "a skyscraper", "a windmill", "a pagoda", "a bridge over a river"],
    "text": ["the letter A", "the letter Z", "the word \"hello\"", "the number 7", "the word \"love\"",
             "the letters \"abc\"", "the word \"style\"", "the number 42"],
}
# What the live samples draw while a round trains (styledrop/training_samples.py), unless a round names its own:
# two contents far apart, an animal indoors and a building outdoors.
SAMPLE_CONTENTS = ("a cat sleeping on a sofa", "a lighthouse on a cliff")

EVAL_PROMPTS: dict[str, list[str]] = {
    "animals": ["a dachshund wearing a scarf", "a tabby cat on a windowsill", "an elephant bathing in a river",
                "a parrot on a pirate's shoulder", "a tortoise crossing a road", "a wolf howling at the moon",
                "a flamingo standing on one leg", "a rabbit eating a carrot", "a giraffe under an acacia tree",
                "a hedgehog curled into a ball", "a jellyfish in dark water", "a bear catching a salmon",
                "a hummingbird at a flower"],
    "objects": ["a pair of reading glasses", "a chess board mid-game", "a rocking chair on a porch",
                "a bicycle helmet", "a stack of old books", "a table lamp with a green shade",
                "a violin case", "a pocket watch on a chain", "a glass jar of marbles", "a wooden spoon",
                "a typewriter", "an hourglass", "a pair of scissors"],
    "scenes": ["a rice terrace in the morning mist", "a tropical island seen from above",
               "a frozen river between pine trees", "a canyon at sunset", "a field of sunflowers",
               "a harbour full of fishing boats", "a rainy street at night with neon signs",
               "a volcano erupting at night", "a quiet library reading room", "a meadow with wildflowers",
               "a cave with glowing crystals", "a market square on a sunny day", "the northern lights over a lake"],
    "people": ["a firefighter holding a hose", "a grandmother knitting", "a boy riding a skateboard",
               "a painter at an easel", "a runner crossing the finish line", "a doctor with a stethoscope",
               "a girl blowing bubbles", "a farmer on a tractor", "a drummer on stage", "a surfer on a big wave",
               "a baker holding a tray of bread", "two friends sharing an umbrella", "a knight in armour"],
    "vehicles": ["a yellow taxi", "a submarine under the sea", "a tractor in a muddy field", "a fire engine",
                 "a rowing boat on a pond", "a helicopter over the city", "a cable car in the mountains",
                 "a race car on a track", "a tram in the old town", "a rocket on the launch pad",
                 "a canoe on a calm lake", "a delivery van", "a vintage scooter"],
    "food": ["a plate of sushi", "a bowl of fruit salad", "a croissant on a saucer", "a pot of soup on a stove",
             "a glass of orange juice", "a chocolate chip cookie", "a taco with salsa", "a wedge of cheese",
             "a bowl of cereal with milk", "an ice cream cone", "a plate of spaghetti", "a watermelon cut in half",
             "a jar of honey"],
    "buildings": ["a red barn in a field", "a cathedral with two towers", "a treehouse in an oak tree",
                  "a greenhouse full of plants", "a stone tower by the sea", "a temple in the jungle",
                  "a row of colourful houses", "a train station with a clock", "an igloo",
                  "a farmhouse with a porch", "a domed observatory", "a mosque at sunset", "a log cabin by a lake"],
    "text": ["the letter G", "the letter Q", "the word \"coffee\"", "the number 3", "the word \"garden\"",
             "the word \"open\"", "the letters \"xyz\"", "the number 100", "the word \"dream\"", "the letter M",
             "the word \"music\"", "the number 9", "the word \"peace\""],
}


def _check_categories(names: list[str], table: dict[str, list[str]]) -> None:
    unknown = [n for n in names if n not in table]
    if unknown:
        raise StyleDropError(f"Unknown prompt categories {unknown}; choose from {', '.join(table)}.")


def default_prompts(categories: list[str] | None = None) -> list[str]:
    """All built-in candidate prompts, category by category (or only the named categories)."""
    names = categories or list(CONTENT_PROMPTS)
    _check_categories(names, CONTENT_PROMPTS)
    return [prompt for name in names for prompt in CONTENT_PROMPTS[name]]


def diverse_prompts(count: int | None = None, categories: list[str] | None = None) -> list[str]:
    """`count` candidate prompts drawn round-robin across the categories (all of them when count is None).

    A pool of 16 holds two prompts of each of the eight categories; taking the first `count` of
    `default_prompts()` instead would give only animals, and feedback could then only pick animals.
    """
    names = categories or list(CONTENT_PROMPTS)
    _check_categories(names, CONTENT_PROMPTS)
    interleaved = [p for p in chain.from_iterable(zip_longest(*(CONTENT_PROMPTS[n] for n in names))) if p]
    if count is None:
        return interleaved
    if count < 1:
        raise StyleDropError(f"A candidate pool needs at least one prompt, got {count}.")
    return interleaved[:count]


def eval_prompts(categories: list[str] | None = None) -> list[str]:
    """The held-out evaluation list (never a candidate prompt), category by category."""
    names = categories or list(EVAL_PROMPTS)
    _check_categories(names, EVAL_PROMPTS)
    return [prompt for name in names for prompt in EVAL_PROMPTS[name]]


def read_prompt_file(path: str | Path) -> list[str]:
    """One content prompt per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    if not path.is_file():
        raise StyleDropError(f"Prompt file not found: {path}")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise StyleDropError(f"Prompt file {path} holds no prompts.")
    return prompts


# Letters of other scripts that look like Latin ones (Unicode's confusables, the common ones): a prompt written
# with a Cyrillic "а" is the same prompt to a reader, and nearly the same to CLIP's tokenizer.
CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "һ": "h",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "ɑ": "a", "ɡ": "g", "ı": "i", "ℓ": "l", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ʜ": "h",
    "ɪ": "i", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
})
ARTICLES = frozenset({"a", "an", "the"})


def _singular(word: str) -> str:
    """One form for a word and its plural ("houses", "house" -> "hous"; "puppies" -> "puppy"; "boxes" -> "box"):
    both sides of a comparison go through it, so it needs to be consistent rather than good English."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def normalise(prompt: str, invisible: str = "") -> str:
    """The form two prompts are compared in, so that variants a reader takes for the same prompt match: Unicode
    compatibility forms (NFKC: full-width letters, ligatures, non-breaking spaces), invisible format characters
    (zero-width spaces and joiners, soft hyphens: dropped, or read as `invisible`), accents, look-alike letters
    of other scripts, case, punctuation and symbols (hyphens, underscores included), articles, and plurals."""
    text = unicodedata.normalize("NFKC", prompt)
    text = "".join(invisible if unicodedata.category(ch) == "Cf" else ch for ch in text)
    text = text.casefold().translate(CONFUSABLES)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return " ".join(_singular(w) for w in text.split() if w not in ARTICLES)


def _forms(prompt: str) -> set[str]:
    """A zero-width character inside a word hides nothing ("hou\u200bse"), between words it is a space
    ("a\u200bhouse"): both readings count."""
    return {normalise(prompt), normalise(prompt, " ")}


def overlap(prompts: list[str], trained_on: list[str]) -> list[str]:
    """The prompts of `prompts` that also appear in `trained_on` (as `normalise` compares them), in `prompts`' order."""
    seen = set().union(*(_forms(p) for p in trained_on))
    return [p for p in prompts if _forms(p) & seen]
