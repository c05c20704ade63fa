// Types of build-inputs.mjs (a plain-JavaScript script, run by node at install) for the TypeScript that imports it.
export declare const INPUTS_FILE: string;
export declare function buildInputsDigest(root: string): string;
export declare function isCurrentBuild(root: string, distDir: string): boolean;
export declare function filesUnder(dir: string): string[];
