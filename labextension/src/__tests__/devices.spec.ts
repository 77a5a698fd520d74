import { devicesText, formatMiB } from '../status';

const CPU = '/device:CPU:0';
const GPU = '/device:GPU:0';

describe('devices cell', () => {
  it('names the CPU of a worker without a GPU', () => {
    const status = {
      devices: {
        devices: [{ name: CPU, type: 'CPU', memory_in_use: null, memory_peak: null }],
        models: { 'vk@1': CPU }
      }
    };
    expect(devicesText(status)).toBe('CPU:0');
  });

  it("shows each GPU's memory in use and its peak", () => {
    const status = {
      devices: {
        devices: [
          { name: CPU, type: 'CPU', memory_in_use: null, memory_peak: null },
          { name: GPU, type: 'GPU', memory_in_use: 3 * 1048576, memory_peak: 40 * 1048576 }
        ]
      }
    };
    expect(devicesText(status)).toBe('CPU:0, GPU:0 3.00 MiB (peak 40.0 MiB)');
    expect(formatMiB(1572864)).toBe('1.50 MiB');
  });

  it('says nothing before the worker runs', () => {
    expect(devicesText({ devices: { devices: null } })).toBe('–');
    expect(devicesText({})).toBe('–');
  });
});
