// The top hits' 3D views (3Dmol.js, inlined above): each .viewer box reads its mmCIF from the
// JSON script element its data-model names. Atoms are coloured by pLDDT (the B-factor column) or
// by chain; polymers drawn as cartoon, ligands (HETATM) as ball and stick.
(function () {
  var PLDDT = [[90, 0x0053d6], [70, 0x65cbf3], [50, 0xffdb13], [-Infinity, 0xff7d45]];
  var CHAINS = [0x3b73b9, 0xe36209, 0x2da44e, 0xbf3989, 0x8250df, 0x9a6700, 0x1b7c83, 0xcf222e];
  var SCHEMES = {
    plddt: function () {
      return function (atom) {
        for (var i = 0; i < PLDDT.length; i++) { if (atom.b > PLDDT[i][0]) { return PLDDT[i][1]; } }
        return PLDDT[PLDDT.length - 1][1];
      };
    },
    chain: function (atoms) {
      var order = {};
      atoms.forEach(function (atom) {
        if (!(atom.chain in order)) { order[atom.chain] = Object.keys(order).length; }
      });
      return function (atom) { return CHAINS[order[atom.chain] % CHAINS.length]; };
    }
  };
  window.foldscreenViewers = {};
  if (typeof $3Dmol === "undefined") { return; }
  document.querySelectorAll(".viewer[data-model]").forEach(function (box) {
    var viewer;
    try {
      viewer = $3Dmol.createViewer(box, { backgroundColor: "white" });
    } catch (err) {
      viewer = null;
    }
    if (!viewer) {
      box.textContent = "This browser cannot draw the 3D view (no WebGL).";
      return;
    }
    var model = viewer.addModel(JSON.parse(document.getElementById(box.dataset.model).textContent), "cif");
    var atoms = model.selectedAtoms({});
    var colour = function (scheme) {
      model.setColorByFunction({}, SCHEMES[scheme](atoms));
      viewer.render();
    };
    viewer.setStyle({ hetflag: false }, { cartoon: {} });
    viewer.setStyle({ hetflag: true }, { stick: { radius: 0.2 }, sphere: { scale: 0.3 } });
    viewer.setHoverable({}, true, function (atom, view) {
      if (!atom.label) {
        atom.label = view.addLabel(atom.chain + " " + atom.resn + " " + atom.resi + " " + atom.atom
          + ", pLDDT " + atom.b.toFixed(1), { position: atom, fontSize: 12, backgroundOpacity: 0.8 });
      }
    }, function (atom, view) {
      if (atom.label) { view.removeLabel(atom.label); delete atom.label; }
    });
    viewer.zoomTo();
    colour("plddt");
    var buttons = box.parentNode.querySelectorAll("button[data-scheme]");
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (other) { other.setAttribute("aria-pressed", String(other === button)); });
        colour(button.dataset.scheme);
      });
    });
    window.foldscreenViewers[box.dataset.model] = viewer;
  });
})();
