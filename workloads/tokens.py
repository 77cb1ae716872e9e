"""Token counts of messages and synthetic prompt text of a given length, under core/tokens.py's rule.

The rule itself (a token is `\\w+` or one other non-space character) lives in core/tokens.py, shared
with the simulated engine, so a prompt synthesised here has exactly the length the engine counts.
"""

from __future__ import annotations

import random
from functools import lru_cache

from core.tokens import count_tokens

# Common English words: every one is a single token under TOKEN_RE, so synthetic text of n words
# (plus sentence-ending periods, also one token each) has exactly the token count asked for.
WORDS: tuple[str, ...] = tuple(
    """
    able about above across act action activity actually add address after again against age ago agree
    air all allow almost alone along already also although always among amount analysis and animal another
    answer any anyone anything appear apply approach area argue arm around arrive art article artist ask
    assume attack attention audience author available avoid away baby back bad bag ball bank bar base be
    beat beautiful because become bed before begin behavior behind believe benefit best better between
    beyond big bill billion bit black blood blue board body book born both box boy break bring brother
    budget build building business but buy by call camera campaign can cancer candidate capital car card
    care career carry case catch cause cell center central century certain certainly chair challenge
    chance change character charge check child choice choose church citizen city civil claim class clear
    clearly close coach cold collection college color come commercial common community company compare
    computer concern condition conference consider consumer contain continue control cost could country
    couple course court cover create crime cultural culture cup current customer cut dark data daughter
    day dead deal death debate decade decide decision deep defense degree democratic describe design
    despite detail determine develop development die difference different difficult dinner direction
    director discover discuss discussion disease do doctor dog door down draw dream drive drop drug during
    each early east easy eat economic economy edge education effect effort eight either election else
    employee end energy enjoy enough enter entire environment environmental especially establish even
    evening event ever every everybody everyone everything evidence exactly example executive exist expect
    experience expert explain eye face fact factor fail fall family far fast father fear federal feel
    feeling few field fight figure fill film final finally financial find fine finger finish fire firm
    first fish five floor fly focus follow food foot for force foreign forget form former forward four
    free friend from front full fund future game garden gas general generation get girl give glass go
    goal good government great green ground group grow growth guess gun guy hair half hand hang happen
    happy hard have head health hear heart heat heavy help here herself high himself history hit hold
    home hope hospital hot hotel hour house how however huge human hundred husband idea identify image
    imagine impact important improve include including increase indeed indicate individual industry
    information inside instead institution interest interesting international interview into investment
    involve issue item itself job join just keep key kid kill kind kitchen know knowledge land language
    large last late later laugh law lawyer lay lead leader learn least leave left leg legal less let
    letter level lie life light like likely line list listen little live local long look lose loss lot
    love low machine magazine main maintain major majority make man manage management manager many market
    marriage material matter may maybe mean measure media medical meet meeting member memory mention
    message method middle might military million mind minute miss mission model modern moment money month
    more morning most mother mouth move movement movie much music must myself name nation national natural
    nature near nearly necessary need network never new news newspaper next nice night none nor north
    not note nothing notice now number occur off offer office officer official often oil old once one
    only onto open operation opportunity option order organization other others our out outside over own
    owner page pain painting paper parent part participant particular particularly partner party pass
    past patient pattern pay peace people per perform performance perhaps period person personal phone
    physical pick picture piece place plan plant play player point police policy political politics poor
    popular population position positive possible power practice prepare present president pressure
    pretty prevent price private probably problem process produce product production professional
    professor program project property protect prove provide public pull purpose push put quality
    question quickly quite race radio raise range rate rather reach read ready real reality realize really
    reason receive recent recently recognize record red reduce reflect region relate relationship
    religious remain remember remove report represent require research resource respond response rest
    result return reveal rich right rise risk road rock role room rule run safe same save say scene school
    science scientist score sea season seat second section security see seek seem sell send senior sense
    series serious serve service set seven several shake share shoot short shot should shoulder show side
    sign significant similar simple simply since sing single sister sit site situation six size skill
    skin small smile social society soldier some somebody someone something sometimes son song soon sort
    sound source south southern space speak special specific speech spend sport spring staff stage stand
    standard star start state statement station stay step still stock stop store story strategy street
    strong structure student study stuff style subject success successful such suddenly suffer suggest
    summer support sure surface system table take talk task tax teach teacher team technology television
    tell ten tend term test than thank that the their them themselves then theory there these they thing
    think third this those though thought thousand threat three through throughout throw thus time today
    together tonight too top total tough toward town trade traditional training travel treat treatment
    tree trial trip trouble true truth try turn two type under understand unit until upon use usually
    value various very victim view violence visit voice vote wait walk wall want war watch water way
    weapon wear week weight well west western what whatever when where whether which while white whole
    whom whose why wide wife will win wind window wish with within without woman wonder word work worker
    world worry would write writer wrong yard yeah year yes yet young your yourself
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


def content_text(content: object) -> str:
    """The text of a message's `content`: a string, or the text parts of a content list (an image
    part has no text: it adds nothing, not even a line break)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def render(messages: list[dict] | tuple[dict, ...]) -> str:
    """A canonical plain-text rendering: role line, content; used for counting and prefix matching.

    Each role name is one token, close to the few tokens a chat template adds per message.
    """
    return "".join(f"{m.get('role', '')}\n{content_text(m.get('content'))}\n" for m in messages)


def prompt_tokens(messages: list[dict] | tuple[dict, ...]) -> int:
    """Input length of a request: the tokens of all message contents (role headers not counted)."""
    return sum(count_tokens(content_text(m.get("content"))) for m in messages)


_BLOCK = 256  # tokens per independently seeded block of synthetic text
_CAPITALIZED = tuple(w.capitalize() for w in WORDS)


def _block(key: str, j: int) -> tuple[str, ...]:
    """Block j of the text stream named `key`: _BLOCK one-token pieces (words and periods).

    Indices come from `randbytes` (one C call per block) rather than `choices` (a Python loop per
    word): ~15x faster, which matters when trace replay synthesises prompts while running.
    (`cast("H")` reads native byte order: the text is the same on every little-endian machine.)
    """
    rng = random.Random(f"{key}:{j}")
    n = len(WORDS)
    idx = [i % n for i in memoryview(rng.randbytes(2 * _BLOCK)).cast("H")]
    words = [WORDS[i] for i in idx]
    lengths = rng.randbytes(_BLOCK // 8 + 1)
    pieces: list[str] = []
    pos = k = 0
    while len(pieces) < _BLOCK:
        length = 7 + lengths[k] % 13  # words in this sentence, then a period
        pieces.append(_CAPITALIZED[idx[pos]])
        pieces += words[pos + 1 : pos + length]
        pieces.append(".")
        pos, k = pos + length, k + 1
    return tuple(pieces[:_BLOCK])


def synth_text(n_tokens: int, key: str) -> str:
    """Sentence-shaped random English words with exactly `n_tokens` tokens (by `count_tokens`).

    Deterministic in `key`; the text for n tokens is a string prefix of the text for more tokens
    with the same key, so prefixes of different lengths stay shareable.
    """
    n = max(0, int(n_tokens))
    pieces: list[str] = []
    for j in range((n + _BLOCK - 1) // _BLOCK):
        pieces.extend(_block(key, j)[: n - j * _BLOCK])
    return " ".join(pieces).replace(" .", ".")


@lru_cache(maxsize=256)
def _prefix_text(prefix_id: str, n_tokens: int) -> str:
    return synth_text(n_tokens, f"goodput-prefix:{prefix_id}")


def synth_prompt(n_tokens: int, seed: int, prefix_id: str | None = None, prefix_tokens: int = 0) -> str:
    """Text of ~`n_tokens` tokens (exact by `count_tokens`), for trace replay and generators.

    With a `prefix_id`, the first `prefix_tokens` tokens depend only on the id, so every prompt of
    the same prefix group starts with an identical prefix (what a prefix cache can reuse); the rest
    depends on `seed`. Different seeds give different text from the first token on, so unrelated
    prompts share no prefix by accident.
    """
    n_tokens = max(1, int(n_tokens))
    if not prefix_id or prefix_tokens <= 0:
        return synth_text(n_tokens, f"goodput-prompt:{seed}")
    head = _prefix_text(prefix_id, min(int(prefix_tokens), n_tokens))
    rest = n_tokens - min(int(prefix_tokens), n_tokens)
    if rest <= 0:
        return head
    return head + "\n\n" + synth_text(rest, f"goodput-prompt:{prefix_id}:{seed}")
