// The hub family by name: each name's official checkpoint and transform size, and
// which architecture a weights file holds (from its keys), so that a name and a file
// that disagree fail in one line naming both.
import { describe, expect, it } from 'vitest';
import { MIDAS_SMALL, MIDAS_V2 } from '../src/midas/config.js';
import { detectArchitecture, MODEL_NAMES, MODELS, modelByName } from '../src/midas/models.js';
import { expectedShapes, modelForWeights } from '../src/midas/weights.js';
import { hashPrefixOf } from '../src/node/download.js';
import { REDUCED_SMALL, REDUCED_V2 } from './reduced.js';

const v2Keys = [...expectedShapes(MIDAS_V2).keys()];
const smallKeys = [...expectedShapes(MIDAS_SMALL).keys()];

describe('MODELS', () => {
  it('names v2, v2.1 and small with SPEC §1 files, hash prefixes and transform sizes 384, 384, 256', () => {
    expect(MODEL_NAMES).toEqual(['v2', 'v2.1', 'small']);
    expect(MODELS.v2.checkpoint.file).toBe('model-f46da743.pt');
    expect(MODELS['v2.1'].checkpoint.file).toBe('model-f6b98070.pt');
    expect(MODELS.small.checkpoint.file).toBe('model-small-70d6b9c8.pt');
    expect(MODEL_NAMES.map((n) => MODELS[n].size)).toEqual([384, 384, 256]);
    expect(MODELS['v2.1'].config).toBe(MIDAS_V2);
    expect(MODELS.small.config).toBe(MIDAS_SMALL);
    for (const name of MODEL_NAMES) {
      const c = MODELS[name].checkpoint;
      // torch.hub checks a download against the hex in the file name; the URL names the same file.
      expect(hashPrefixOf(c.file)).toBe(c.sha256Prefix);
      expect(new URL(c.url).pathname.split('/').at(-1)).toBe(c.file);
      expect(MODELS[name].name).toBe(name);
    }
  });

  it('modelByName refuses an unknown name, listing the names', () => {
    expect(modelByName('small').config).toBe(MIDAS_SMALL);
    expect(() => modelByName('large')).toThrow("unknown model 'large' (choose from v2, v2.1, small)");
  });
});

describe('the architecture of a weights file', () => {
  it('is read from its keys: ResNeXt-101 for v2 layouts, EfficientNet-Lite3 for small, neither otherwise', () => {
    expect(detectArchitecture(v2Keys)).toBe('resnext101');
    expect(detectArchitecture(smallKeys)).toBe('efficientnet_lite3');
    expect(detectArchitecture(['model.weight'])).toBeUndefined();
    // The reduced fixtures have the same key layouts.
    expect(detectArchitecture(expectedShapes(REDUCED_V2.config).keys())).toBe('resnext101');
    expect(detectArchitecture(expectedShapes(REDUCED_SMALL.config).keys())).toBe('efficientnet_lite3');
  });

  it('decides the model when none is named; v2.1 takes a v2-layout file', () => {
    expect(modelForWeights(smallKeys, 'x.safetensors').info.name).toBe('small');
    expect(modelForWeights(smallKeys, 'x.safetensors').config).toBe(MIDAS_SMALL);
    expect(modelForWeights(v2Keys, 'x.safetensors').info.name).toBe('v2');
    expect(modelForWeights(v2Keys, 'x.safetensors', 'v2.1').info.name).toBe('v2.1');
    expect(modelForWeights(v2Keys, 'x.safetensors', 'v2.1').config).toBe(MIDAS_V2);
  });

  it('refuses a named model of the other architecture in one line naming the file and both', () => {
    expect(() => modelForWeights(smallKeys, 'w/small.pt', 'v2')).toThrow(
      "w/small.pt holds a MiDaS v2.1 small (EfficientNet-Lite3) checkpoint, but model 'v2' is MiDaS v2 / v2.1 large (ResNeXt-101) (use model 'small', or name no model to take the file's)",
    );
    expect(() => modelForWeights(v2Keys, 'w/v21.pt', 'small')).toThrow(/^w\/v21\.pt holds a MiDaS v2 \/ v2\.1 large \(ResNeXt-101\) checkpoint, but model 'small'/);
  });

  it('takes an explicit config as given (reduced networks), and a file of neither architecture as the named model', () => {
    expect(modelForWeights(smallKeys, 'x', undefined, REDUCED_SMALL.config).config).toBe(REDUCED_SMALL.config);
    expect(modelForWeights(smallKeys, 'x', undefined, REDUCED_SMALL.config).info.name).toBe('small');
    expect(() => modelForWeights(smallKeys, 'x.pt', undefined, REDUCED_V2.config)).toThrow(/^x\.pt holds a MiDaS v2\.1 small .* but the given config is MiDaS v2/);
    expect(modelForWeights(['model.weight'], 'x', 'small').config).toBe(MIDAS_SMALL);
    expect(modelForWeights(['model.weight'], 'x').info.name).toBe('v2');
  });
});
