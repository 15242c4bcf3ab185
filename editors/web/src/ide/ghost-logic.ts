// Where AI ghost text goes, pure: a suggestion was asked for at `anchor`;
// since then the user may have typed. If what they typed is a prefix of
// the suggestion, the rest still shows at the cursor; anything else drops
// it. Also the word-wise accept and the feedback counts.

export interface Suggestion {
  /** Document offset the suggestion was asked for. */
  anchor: number;
  text: string;
}

export interface Placement {
  pos: number;
  text: string;
  /** How much of the suggestion the user already typed. */
  typed: number;
}

/**
 * Place `suggestion` in a document whose text between `anchor` and the
 * cursor is `typedSince` (read from the current document), with the cursor
 * at `cursor`. Null when the suggestion no longer applies.
 */
export function place(suggestion: Suggestion, cursor: number, typedSince: string | null): Placement | null {
  if (!suggestion.text) return null;
  if (cursor < suggestion.anchor || typedSince === null) return null;
  if (typedSince.length !== cursor - suggestion.anchor) return null;
  if (!suggestion.text.startsWith(typedSince)) return null;
  const rest = suggestion.text.slice(typedSince.length);
  return rest ? { pos: cursor, text: rest, typed: typedSince.length } : null;
}

/** Map the anchor through an edit that inserted `inserted` chars and deleted `deleted` before it. */
export function shiftAnchor(anchor: number, editFrom: number, deleted: number, inserted: number): number | null {
  if (editFrom >= anchor) return anchor;
  if (editFrom + deleted > anchor) return null;
  return anchor - deleted + inserted;
}

/** The length of the next word of `text` (with the spaces before it), for word-wise accept. */
export function nextWordLength(text: string): number {
  const match = /^\s*[\w$]+|^\s*[^\w\s$]+|^\s+/.exec(text);
  return match ? match[0].length : text.length;
}

/** The text of the ghost as lines: the first shows inline, the rest below it. */
export function ghostLines(text: string): { first: string; rest: string[] } {
  const [first = "", ...rest] = text.split("\n");
  return { first, rest };
}
