// Reads the Parquet files named on the command line with hyparquet, an
// independent reader, and prints their rows as one JSON array: 64-bit
// integers as decimal strings, timestamps as microseconds since the epoch
// (decimal strings, exact), non-finite doubles as "NaN", "Infinity",
// "-Infinity"; decimals as hyparquet gives them (JavaScript numbers).
// HYPARQUET is the path of hyparquet's Node entry point (ES modules do not
// search NODE_PATH).
import { pathToFileURL } from 'node:url'

const { asyncBufferFromFile, parquetReadObjects } = await import(pathToFileURL(process.env.HYPARQUET).href)

const parsers = { timestampFromMicroseconds: micros => ({ micros: micros.toString() }) }
const rows = []
for (const name of process.argv.slice(2)) {
  const file = await asyncBufferFromFile(name)
  for (const row of await parquetReadObjects({ file, parsers })) {
    rows.push(row)
  }
}
process.stdout.write(JSON.stringify(rows, (_, v) => {
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v)
  return v
}))
