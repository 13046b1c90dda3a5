"""Site chrome that extraction lets through, removed line by line.

Only short lines are candidates, and a line goes only when it matches a
pattern as a whole, so an article sentence that merely mentions cookies or
Facebook is never touched. Patterns come from real French, English, German,
Ukrainian and Russian news templates ("Skip to content", share widgets such
as "facebook icon twitter icon linkedin icon", "Copié!", "Plus de contenu",
photo credits, newsletter boxes, AI-generated-content footers).
"""

from __future__ import annotations

import re

MAX_CHROME_LINE = 200

_SOCIAL = r"(?:facebook|twitter|x|linkedin|whatsapp|telegram|e-?mail|mail|messenger|reddit|pinterest|bluesky|threads|viber|vk|copy|print|link)"
_PATTERNS = [
    # skip links
    r"(?:skip|jump) to (?:main )?(?:content|navigation)",
    r"(?:aller|passer) (?:directement )?au (?:contenu|menu)(?: principal)?",
    r"zum (?:inhalt|hauptinhalt) springen|direkt zum inhalt",
    r"перейти к (?:содержанию|основному содержанию|контенту)",
    r"перейти до (?:змісту|основного змісту|контенту)",
    # share widgets
    rf"(?:{_SOCIAL}(?: icon)?[\s,|/·•]*)+",
    r"(?:partager|share|teilen|поделиться|поділитися)(?: (?:cet article|this article|this|sur|on|via|artikel))?(?:\s*:)?(?:\s+\w+){0,4}",
    r"copi[ée]\s*!?|copied\s*!?|lien copié\s*!?|link copied\s*!?|kopiert\s*!?|скопировано\s*!?|скопійовано\s*!?",
    r"plus de contenu|more content|mehr inhalte?|lire (?:aussi|la suite|plus)|à lire aussi|a lire aussi|read more|related(?: articles| stories| content)?|mehr zum thema|lesen sie auch|читайте (?:также|також)|по теме|на тему",
    r"(?:related|see (?:more|also)|read (?:more|also)|more on this|lire aussi|voir aussi|à voir aussi|à lire|siehe auch|mehr dazu|lesen sie (?:auch|mehr)|читайте (?:также|також)|дивіться також|смотрите также)\s*:.{0,150}",
    r"(?:don'?t miss|ne manquez pas|à ne pas manquer|nicht verpassen|не пропустіть|не пропустите)\s*:?",
    # headline lists whose items carry a tag: "... [VIDEO]", "... [INSIGHT]|"
    r".{0,150}\[(?:video|insight|reaction|pictures|photos|analysis|poll|live|revealed|latest|comment|vid[ée]o|direct)\]\s*\|?",
    # comments, follow-us and call-to-action boxes
    r"(?:\d+\s+)?(?:comments?|commentaires?|kommentare?|коментарі|комментарии)(?:\s*\(\d+\))?",
    r"(?:tell us what you think|leave a (?:comment|reply)|laisser un commentaire|réagir|kommentieren sie)\b.{0,40}",
    r"(?:follow (?:him|her|them|us|me)|suivez-(?:nous|le|la)|folgen sie (?:uns|ihm|ihr)|підписуйтесь на|подписывайтесь на)\b.{0,40}(?:twitter|facebook|instagram|telegram|x\.com|linkedin|bluesky|mastodon|@\w+).{0,80}",
    r".{0,120}\b(?:click here|cliquez ici|klicken sie hier|натисніть тут|нажмите здесь)\b.{0,60}",
    r"(?:have|got) a (?:news )?tip\?.{0,200}",
    r"(?:like|enjoyed|liked) this (?:story|article)\?.{0,80}",
    r"(?:filed under|tags?|topics?|mots-clés|thèmes?|schlagwörter|themen|теги|мітки|теми|темы)\s*:.{0,150}",
    r"also on [\w-]+(?:\.[\w-]+)+\b.{0,150}",
    # CMS shortcodes left in the text: [button ...]...[/button]
    r"\[(\w+)[^\]]{0,150}\].{0,100}\[/\1\]",
    # photo and video credits
    r"(?:photo|photos|image|illustration|vid[ée]o|foto|bild|credit|crédit|crédits|фото|відео|видео)\s*[:/©].{0,150}",
    r"©.{0,150}",
    r".{0,150}\(\s*(?:photo|foto|фото)\s*[:/].{0,60}\)",
    r".{0,120}/\s*(?:afp|reuters|ap|epa|dpa|getty images|abaca|maxppp|sipa|reuters/\w+)\s*",
    # bylines and datelines left outside the metadata
    r"(?:par|by|von|автор|авторка)\s.{0,80}(?:publié|published|veröffentlicht|опубліковано|опубликовано|mis à jour|updated|aktualisiert).{0,80}",
    r"(?:publié|mis à jour|modifié|published|updated|veröffentlicht|aktualisiert|stand:|опубліковано|опубликовано|оновлено|обновлено)(?:\s+(?:le|on|am|:))?\s.{0,40}\d.{0,60}",
    # newsletters and consent
    r".{0,120}(?:newsletter|infolettre).{0,120}",
    r"(?:abonnez-vous|inscrivez-vous|subscribe|sign up|abonnieren|jetzt anmelden|підпишіться|подпишитесь)\b.{0,150}",
    r"(?:.{0,40}\W)?(?:nous utilisons des cookies|we use cookies|wir verwenden cookies|мы используем (?:файлы )?cookie|ми використовуємо (?:файли )?cookie)"
    r"(?=.{0,200}(?:consent|accept|partenaires|partners|audience|navigation|exp[ée]rience|personnali|statisti|werbung|zustimm|згод|соглас|налаштув|настро))"
    r".{0,200}",
    r"(?:accepter|refuser|tout accepter|tout refuser|accept all|reject all|alle akzeptieren|accept|continuer sans accepter)(?:\s*(?:et fermer|cookies))?",
    # AI-content footers
    r".{0,80}(?:contenu a été (?:créé|généré|rédigé)|content was (?:created|generated|produced)|inhalt wurde .{0,30}erstellt).{0,40}(?:\bia\b|\bai\b|\bki\b|intelligence artificielle|artificial intelligence|künstliche[rn]? intelligenz).{0,80}",
]
_CHROME = re.compile(r"^\s*(?:" + "|".join(f"(?:{p})" for p in _PATTERNS) + r")\s*$", re.IGNORECASE)


def is_chrome(line: str) -> bool:
    return len(line) <= MAX_CHROME_LINE and bool(_CHROME.match(line))


def clean_text(text: str) -> str:
    """The text without chrome lines, blank lines folded."""
    kept = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in kept if line and not is_chrome(line))
