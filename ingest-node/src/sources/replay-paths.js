// The ways a replay reaches tardis-dev (--replay-path; auto = direct at speed max without cut-after,
// websocket otherwise). Its own module, importing nothing, so that cli.js can check the flag without
// loading replay.js and tardis-dev for a source that does not use them.
export const REPLAY_PATHS = ['auto', 'direct', 'websocket']
