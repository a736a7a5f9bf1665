// Open a model file the way the Netron app does and print a JSON summary of what Netron read.
//
//   node netron_open.mjs NETRON_PACKAGE_DIR MODEL_FILE
//
// NETRON_PACKAGE_DIR is the directory of the installed PyPI package `netron` (its view.js, kmodel.js,
// base.js, node.js ...). Nothing of Netron is copied here: its own modules are imported from that
// directory at run time. The file goes through Netron's own dispatch (view.ModelFactoryService, which
// picks kmodel.js for '.kmodel' and calls its ModelFactory match() then open()) on a stream of Netron's
// own node.FileStream. The returned model is then walked completely, the way the app's graph and
// sidebars read it, and every tensor is decoded with Netron's base.Tensor (which checks the data size
// against the shape). Exit code 0 and one JSON object on stdout on success; exit code 1 and a one-line
// message on stderr on any failure (file not recognised, open() throwing, walking or decoding throwing).
//
// Netron's .js files are ES modules shipped without a package.json saying so; a resolve hook tells
// Node so explicitly (older Node versions do not detect the module syntax by themselves).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as module from 'node:module';
import * as path from 'node:path';
import * as url from 'node:url';

const fail = (message) => {
    process.stderr.write(`netron_open: ${message}\n`);
    process.exit(1);
};

const esmHook = (dirUrl) => {
    const source = `
        const prefix = ${JSON.stringify(dirUrl)};
        export async function resolve(specifier, context, next) {
            const result = await next(specifier, context);
            if (result.url.startsWith(prefix) && result.url.endsWith('.js')) {
                return { ...result, format: 'module' };
            }
            return result;
        }`;
    return `data:text/javascript,${encodeURIComponent(source)}`;
};

// JSON-safe copy of an attribute value: typed arrays and long arrays are summarised, BigInt as string.
const plain = (value, depth = 0) => {
    if (value === null || value === undefined) {
        return null;
    }
    if (typeof value === 'bigint') {
        return value.toString();
    }
    if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') {
        return value;
    }
    if (ArrayBuffer.isView(value)) {
        return { typed: value.constructor.name, length: value.length };
    }
    if (depth > 6) {
        return String(value);
    }
    if (Array.isArray(value)) {
        return value.map((item) => plain(item, depth + 1));
    }
    if (typeof value === 'object') {
        const obj = {};
        for (const [key, item] of Object.entries(value)) {
            obj[key] = plain(item, depth + 1);
        }
        return obj;
    }
    return String(value);
};

const main = async () => {
    const [dir, file] = process.argv.slice(2);
    if (!dir || !file) {
        fail('usage: node netron_open.mjs NETRON_PACKAGE_DIR MODEL_FILE');
    }
    for (const name of ['view.js', 'kmodel.js', 'base.js', 'node.js']) {
        if (!fs.existsSync(path.join(dir, name))) {
            fail(`${name} not found in '${dir}' (is the PyPI package netron installed?)`);
        }
    }
    const dirUrl = url.pathToFileURL(path.resolve(dir) + path.sep).href;
    if (module.register) {
        module.register(esmHook(dirUrl), import.meta.url);
    }
    const load = (name) => import(new URL(`${name}.js`, dirUrl).href);
    const [view, base, node] = [await load('view'), await load('base'), await load('node')];

    const stat = fs.statSync(file);
    const stream = new node.FileStream(file, 0, stat.size, stat.mtimeMs);
    const used = [];
    const host = {
        type: 'Test',
        environment: () => undefined,
        event: () => {},
        exception: () => {},
        require: async (id) => {
            used.push(id);
            return load(id.replace(/^\.\//, ''));
        },
        request: async (name) => {
            throw new Error(`Netron asked for another file '${name}'.`);
        }
    };
    const context = {
        identifier: path.basename(file),
        stream,
        request: (name, encoding, base) => host.request(name, encoding, base),
        require: (id) => host.require(id),
        error: (error) => {
            throw error;
        }
    };
    const service = new view.ModelFactoryService(host);
    const model = await service.open(context);
    if (!model) {
        fail(`Netron returned no model for '${file}'`);
    }

    const tensor = (initializer) => {
        const decoded = new base.Tensor(initializer);
        const raw = decoded.data;
        const value = decoded.value;
        const flat = Array.isArray(value) ? value.flat(Infinity) : [value];
        const bytes = raw instanceof Uint8Array ? raw : new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
        return {
            dataType: initializer.type.dataType,
            shape: initializer.type.shape.dimensions,
            bytes: bytes.length,
            sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
            count: flat.length,
            finite: flat.every((v) => typeof v !== 'number' || Number.isFinite(v))
        };
    };
    const value = (val) => ({
        name: val.name,
        type: val.type ? val.type.toString() : null,
        initializer: val.initializer ? tensor(val.initializer) : null
    });
    const argument = (arg) => ({ name: arg.name, value: Array.isArray(arg.value) ? arg.value.map(value) : [] });
    const walk = (n) => ({
        type: n.type.name,
        category: n.type.category || '',
        identifier: n.identifier === undefined ? null : n.identifier,
        inputs: (n.inputs || []).map(argument),
        outputs: (n.outputs || []).map(argument),
        attributes: Object.fromEntries((n.attributes || []).map((a) => [a.name, plain(a.value)])),
        chain: (n.chain || []).map(walk)
    });
    const graphs = (model.modules || model.graphs || []).map((graph) => ({
        name: graph.name,
        inputs: graph.inputs.map(argument),
        outputs: graph.outputs.map(argument),
        nodes: graph.nodes.map(walk)
    }));
    if (graphs.length === 0) {
        fail(`Netron's model of '${file}' has no graph`);
    }
    const nodes = graphs.flatMap((g) => g.nodes);
    const summary = {
        format: model.format,
        factories: used,
        graphs: graphs.length,
        node_count: nodes.length,
        node_types: nodes.map((n) => n.type),
        modules: graphs
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
};

main().catch((error) => {
    const where = error && error.context ? ` [${error.context}]` : '';
    fail(`${error && error.message ? error.message : String(error)}${where}`.replace(/\n/g, ' | '));
});
