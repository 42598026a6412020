/** Process entry of the CLI (bin/nuggets.js imports the compiled copy of this file). */
import { main } from './main.js';

process.exitCode = await main(process.argv);
