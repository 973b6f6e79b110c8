"""Knowledge-base articles: an editable draft and immutable published versions.

Search works for Chinese and English without a word segmenter or a database extension: the
text is cut into search terms (lower-cased Latin words and digits; for runs of CJK characters
every character and every overlapping pair, as Lucene's CJK analyzer does), stored as a
PostgreSQL ``tsvector`` with a GIN index. A query is cut the same way and all its terms must
match: 漏水 finds 水泵漏水怎么办; Latin words match whole words (no stemming).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain import Aggregate, DomainError, InvalidTransition

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_IS_CJK = re.compile(rf"[{_CJK}]")
MAX_TERMS = 20_000


def search_terms(text: str) -> list[str]:
    """The terms a text is found by (see the module docstring)."""
    terms: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        run = match.group(0)
        if _IS_CJK.match(run):
            terms.extend(run)
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            terms.append(run)
        if len(terms) >= MAX_TERMS:
            break
    return terms[:MAX_TERMS]


def query_terms(text: str) -> list[str]:
    """A query's terms: the pairs of a CJK run (its single character if alone), Latin words."""
    terms: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        run = match.group(0)
        if _IS_CJK.match(run):
            terms.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        else:
            terms.append(run)
    return list(dict.fromkeys(terms))[:50]


class ArticleStatus(StrEnum):
    DRAFT = "draft"  # never published
    PUBLISHED = "published"  # a version is live (the draft may hold unpublished edits)
    ARCHIVED = "archived"


@dataclass(frozen=True)
class ArticleVersion:
    number: int
    title: str
    body: str
    category: str
    published_at: datetime
    published_by: str


@dataclass(eq=False)
class Article(Aggregate):
    id: uuid.UUID
    category: str
    title: str  # the draft's
    body: str
    author_id: str
    created_at: datetime
    updated_at: datetime
    status: ArticleStatus = ArticleStatus.DRAFT
    published: ArticleVersion | None = None

    @classmethod
    def draft(cls, *, id: uuid.UUID, category: str, title: str, body: str, author_id: str, now: datetime) -> Article:
        article = cls(
            id=id, category=category, title=title, body=body, author_id=author_id, created_at=now, updated_at=now
        )
        article._check()
        article.version = 1
        return article

    def _check(self) -> None:
        if not self.title.strip() or not self.body.strip():
            raise DomainError("an article needs a title and a body")

    def edit(self, *, title: str, body: str, category: str, now: datetime) -> None:
        if self.status == ArticleStatus.ARCHIVED:
            raise InvalidTransition("an archived article cannot be edited")
        self.title, self.body, self.category, self.updated_at = title, body, category, now
        self._check()
        self.version += 1

    def publish(self, *, by: str, now: datetime) -> ArticleVersion:
        """The draft as it is becomes the next published version (readers and search see it)."""
        if self.status == ArticleStatus.ARCHIVED:
            raise InvalidTransition("an archived article cannot be published")
        number = (self.published.number if self.published else 0) + 1
        self.published = ArticleVersion(number, self.title, self.body, self.category, now, by)
        self.status, self.updated_at = ArticleStatus.PUBLISHED, now
        self.version += 1
        return self.published

    def archive(self, *, now: datetime) -> None:
        """Out of search and suggestions, and no longer linkable; its versions stay readable."""
        if self.status == ArticleStatus.ARCHIVED:
            raise InvalidTransition("the article is archived already")
        self.status, self.updated_at = ArticleStatus.ARCHIVED, now
        self.version += 1

    def searchable_text(self) -> str | None:
        """Only the published version is searched."""
        if self.published is None or self.status != ArticleStatus.PUBLISHED:
            return None
        return " ".join(search_terms(f"{self.published.title}\n{self.published.title}\n{self.published.body}"))
