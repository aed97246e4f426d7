using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// A UNet down block without cross-attention: returns its output and the states it hands to the up path
/// (each resnet/attention output, then the downsampled output), as diffusers' blocks return
/// <c>(hidden_states, output_states)</c>.
/// </summary>
public interface IDownBlock2D
{
    (Tensor HiddenStates, Tensor[] OutputStates) Forward(Tensor hiddenStates, Tensor? temb);
}
