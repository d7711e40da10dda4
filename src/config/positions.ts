import { isMap, isScalar, isSeq, LineCounter, type Document, type Node } from "yaml";

/**
 * Where a key path is in the YAML source, for error messages. Points at the key itself
 * (`ttl:`) rather than its value, which for a nested mapping starts on a later line; when the
 * path goes past what the file holds (a required key that is missing), points at the
 * deepest part that exists. Returns an offset into the text the document was parsed from.
 */
export function offsetOf(doc: Document, path: readonly (string | number)[]): number | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = isNode(node) ? node : undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined || !isNode(pair.key)) break;
      found = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg];
      if (!isNode(item)) break;
      found = item;
      node = item;
    } else {
      break;
    }
  }
  return found?.range?.[0];
}

function isNode(v: unknown): v is Node {
  return isMap(v) || isSeq(v) || isScalar(v);
}

/** A LineCounter over `text` itself (parseDocument fills one only for the text it parses). */
export function lineCounterFor(text: string): LineCounter {
  const lc = new LineCounter();
  lc.addNewLine(0);
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lc.addNewLine(i + 1);
  return lc;
}
