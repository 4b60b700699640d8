// What a decoder says about a file it refuses (formats/nnc-v1.md §9): "format" for a bad
// file (nnc's FormatError), "model" for a model that is missing or not the file's
// (nnc's ModelError).
export class NncError extends Error {
  constructor(kind, message) {
    super(kind === "format" && !message.startsWith("corrupt") && !message.startsWith("not ")
      ? `corrupt .nnc file: ${message}` : message);
    this.name = "NncError";
    this.kind = kind;
  }
}
