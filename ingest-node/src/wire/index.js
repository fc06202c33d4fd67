// Wire format between the ingester and the processor: built from proto/wire.json.
export { schema, compileSchema, frameSpec, columnWidth, WIRE_JSON_PATH, INT64_MIN } from './schema.js'
export { encodeFrame, decodeFrame, assembleFrame, encodeStrings } from './codec.js'
export { FrameBuilder } from './builder.js'
export { rowsToColumns, frameToRows } from './rows.js'
