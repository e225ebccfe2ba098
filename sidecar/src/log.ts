import { pino, type Logger } from 'pino';

/** Paths pino censors in every log line: passwords, tokens, URLs that may carry credentials. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'token',
  '*.token',
  'url',
  '*.url',
  'connectionString',
  '*.connectionString',
  'req.headers.authorization',
  'headers.authorization',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'poolguard-sidecar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    },
    destination,
  );
}

/** Error text safe to show in /health and logs: strips anything that looks like a URL password. */
export function describeError(err: unknown): string {
  const raw = err instanceof Error ? err.message || err.name : String(err);
  return raw.replace(/(\w+:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1[redacted]@');
}
