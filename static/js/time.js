/** Server timestamps shown in local time: hours and minutes, calendar days. */

export function pad2(n) {
  return (n < 10 ? "0" : "") + n;
}

/** Parses a server timestamp; null when missing/invalid. */
export function parseTimestamp(ts) {
  if (typeof ts !== "string" || !ts) {
    return null;
  }
  const d = new Date(ts);
  return isNaN(d.getTime()) ? null : d;
}

/** Local calendar day of `d`, as "YYYY-MM-DD". */
export function dayKey(d) {
  return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
}

/** "Today", "Yesterday", or the local date of a `dayKey`. */
export function dayLabel(key) {
  const parts = key.split("-");
  const d = new Date(Number(parts[0]), Number(parts[1]) - 1, Number(parts[2]));
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (key === dayKey(today)) {
    return "Today";
  }
  if (key === dayKey(yesterday)) {
    return "Yesterday";
  }
  const opts = { weekday: "long", month: "long", day: "numeric" };
  if (d.getFullYear() !== today.getFullYear()) {
    opts.year = "numeric";
  }
  try {
    return d.toLocaleDateString(undefined, opts);
  } catch (e) {
    return key;
  }
}
