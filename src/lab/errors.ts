// A lab that cannot be made as asked; `lab up` prints the message as a usage error (exit 2).
export class LabError extends Error {
  override readonly name = 'LabError';
}
